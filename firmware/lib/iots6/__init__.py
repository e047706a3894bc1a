"""iots6 Pico W firmware: the application package (MicroPython; also importable under CPython)."""

FW_VERSION = "iots6-fw/0.2.0"
