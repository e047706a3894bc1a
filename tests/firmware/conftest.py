"""pytest settings for the firmware tests."""

# These are MicroPython scripts and fakes, run inside the MicroPython interpreter by test_micropython.py,
# and the npm folder; pytest must not import them under CPython.
collect_ignore_glob = ["mpy_tests/*", "fakes/*", "mpy/*"]
