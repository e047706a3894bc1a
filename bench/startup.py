"""Start-up of the operator's CLI (#16 goal 5).

* ``iotctl --help`` against a plain Typer app of the same shape: generated from iotctl's own command tree (the same
  groups, commands, parameter names and help texts; bodies that do nothing, no imports but typer), each run as a
  fresh interpreter, interleaved, median of ``runs``.
* ``iotctl tail sensors``: a fresh process started while a reading is waiting for it (retained, as a device's
  last reading is to a new subscriber): time from spawning the process to its first line on stdout, median of
  ``runs``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import BASE, Stack, device_ids, log
from iotctl.secretfiles import write_secret
from iots6_platform.core import contract

ENTRY = "from iotctl.cli.main import run; run()"


def plain_app_source() -> str:
    """A Typer app with iotctl's shape: every group, command and parameter (as a string option or argument)."""
    import click
    import typer.main

    from iotctl.cli.main import app

    lines = ["import typer", "", "app = typer.Typer(help=%r, no_args_is_help=True)" % (app.info.help or "")]
    counter = iter(range(1_000_000))

    def command(cmd: click.Command, parent: str) -> None:
        name = f"c{next(counter)}"
        params = []
        for p in cmd.params:
            if p.name in ("help",):
                continue
            if isinstance(p, click.Argument):
                params.append(f"{p.name}: str = typer.Argument(None)")
            else:
                params.append(f"{p.name}: str = typer.Option(None, {p.opts[0]!r}, help={getattr(p, 'help', '')!r})")
        lines.append(f"@{parent}.command({cmd.name!r}, help={(cmd.help or '')!r})")
        lines.append(f"def {name}({', '.join(params)}):\n    pass")

    def group(grp: click.Group, parent: str) -> None:
        for cmd_name in grp.list_commands(click.Context(grp)):
            cmd = grp.get_command(click.Context(grp), cmd_name)
            if isinstance(cmd, click.Group):
                var = f"g{next(counter)}"
                lines.append(f"{var} = typer.Typer(help={(cmd.help or '')!r}, no_args_is_help=True)")
                lines.append(f"{parent}.add_typer({var}, name={cmd_name!r})")
                group(cmd, var)
            else:
                command(cmd, parent)

    group(typer.main.get_command(app), "app")
    lines += ["", "if __name__ == '__main__':", "    app()", ""]
    return "\n".join(lines)


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    return time.perf_counter() - started


def help_ratio(runs: int) -> dict:
    env = {**os.environ, "COLUMNS": "120"}
    with tempfile.TemporaryDirectory(prefix="iotctl-bench-startup-") as tmp:
        plain = Path(tmp) / "plain_app.py"
        plain.write_text(plain_app_source())
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(_time([sys.executable, "-c", ENTRY, "--help"], env))
            theirs.append(_time([sys.executable, str(plain), "--help"], env))
        bare = [_time([sys.executable, "-c", "pass"], env) for _ in range(runs)]
    iotctl_ms, plain_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    return {
        "runs": runs,
        "iotctl_help_ms": round(iotctl_ms, 1),
        "plain_typer_help_ms": round(plain_ms, 1),
        "python_bare_ms": round(statistics.median(bare) * 1000, 1),
        "ratio": round(iotctl_ms / plain_ms, 3),
    }


def tail_first_line(stack: Stack, runs: int) -> dict:
    """Seconds from spawning ``iotctl tail sensors --count 1`` to its first line, a retained reading waiting."""
    from iotctl.endpoints import MqttEndpoint
    from iotctl.mqtt import connect

    device = device_ids(1)[0]
    topic = contract.topic(BASE, device, contract.TELEMETRY)
    with tempfile.TemporaryDirectory(prefix="iotctl-bench-tail-") as tmp:
        config = Path(tmp) / "none.toml"
        config.write_text("")
        env = {
            **os.environ,
            "IOTCTL_CONFIG": str(config),
            "IOTCTL_STATE_DIR": tmp,
            "IOTCTL_MQTT_HOST": "127.0.0.1",
            "IOTCTL_MQTT_PORT": str(stack.mosquitto.port),
            "IOTCTL_MQTT_USERNAME": "svc.operator",
            "IOTCTL_MQTT_PASSWORD_FILE": str(write_secret(Path(tmp) / "op.pw", stack.operator_password)),
        }
        endpoint = MqttEndpoint("127.0.0.1", stack.mosquitto.port, device, stack.device_passwords[device])
        publisher = connect(endpoint, device)
        samples = []
        try:
            reading = contract.Reading(datetime.now(UTC), device, "telemetry", 1, 21.0, 40.0, 1010.0, None, None,
                                       -55, 10, "1.2.0")  # fmt: skip
            publisher.publish(topic, contract.make_payload(reading), qos=1, retain=True).wait_for_publish(10)
            for _ in range(runs):
                started = time.perf_counter()
                proc = subprocess.Popen(
                    [sys.executable, "-c", ENTRY, "tail", "sensors", "--count", "1", "--timeout", "20"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                line = proc.stdout.readline()
                samples.append(time.perf_counter() - started)
                proc.wait(timeout=30)
                proc.stdout.close()
                if device.encode() not in line:
                    raise RuntimeError(f"tail printed {line!r}, not the reading of `{device}`")
        finally:
            publisher.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
            publisher.disconnect()
            publisher.loop_stop()
    return {
        "runs": runs,
        "first_line_ms_median": round(statistics.median(samples) * 1000, 1),
        "first_line_ms_max": round(max(samples) * 1000, 1),
    }


def run(stack: Stack, runs: int) -> dict:
    log(f"startup: iotctl --help against a plain Typer app of the same shape, {runs} runs each")
    result = {"help": help_ratio(runs)}
    log(f"startup: iotctl tail sensors to its first line, {runs} runs")
    result["tail"] = tail_first_line(stack, runs)
    return result
