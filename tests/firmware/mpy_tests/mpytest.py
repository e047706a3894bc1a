"""A minimal test runner for MicroPython scripts (no pytest inside the interpreter).

``run(globals())`` calls every ``test_*`` function in definition order, prints one line per test and raises
AssertionError at the end if any failed, so run.mjs exits non-zero.
"""

import os
import sys

_roots = [0]


def fresh_root(name="t"):
    """An empty directory standing in for the Pico's flash filesystem root."""
    _roots[0] += 1
    path = "/flash/%s%d" % (name, _roots[0])
    os.mkdir(path)
    return path


def close(a, b, tol):
    return abs(a - b) <= tol


def run(namespace):
    names = [n for n in namespace if n.startswith("test_") and callable(namespace[n])]
    names.sort()
    failures = 0
    import time

    for name in names:
        started = time.ticks_ms()
        try:
            namespace[name]()
            print("ok   %s (%d ms)" % (name, time.ticks_diff(time.ticks_ms(), started)))
        except BaseException as exc:  # noqa: BLE001 - every failure, a fake watchdog reset included, then go on
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures += 1
            print("FAIL " + name)
            sys.print_exception(exc)
    print("%d passed, %d failed" % (len(names) - failures, failures))
    if failures:
        raise AssertionError("%d test(s) failed" % failures)
