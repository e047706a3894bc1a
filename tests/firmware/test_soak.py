"""The 24-hour soak (tests/firmware/mpy_tests/test_soak.py) in the real MicroPython interpreter: a day of virtual
time with scripted Wi-Fi, broker, DNS, internet, config server, NTP, power and flash failures.  Its figures go to
test-artifacts/soak.json; docs/firmware.md quotes them."""

import json
from pathlib import Path

import pytest

from .conftest import run_micropython

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parents[1] / "test-artifacts"


@pytest.mark.slow
def test_a_day_of_outages_without_a_reset_a_lost_reading_or_a_heap_over_budget(node):
    done = run_micropython(node, HERE / "mpy_tests" / "test_soak.py", "--loop", "soak", timeout=600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("SOAK ")), None)
    assert line is not None, done.stdout + done.stderr
    figures = json.loads(line[5:])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert figures["virtual_hours"] >= 24 and figures["watchdog_resets"] == 0 and figures["crashes"] == 0, figures
    assert figures["published"] + figures["dropped_reported"] == figures["readings"], figures
    assert figures["still_buffered"] == 0 and figures["faults"] == {}, figures
    assert figures["heap_high_water"] <= figures["heap_budget"], figures
