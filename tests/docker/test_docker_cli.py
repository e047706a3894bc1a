"""``iotctl.stack.docker`` driving ``docker compose``: clear errors when Docker is missing, no secret on argv.

This machine has the ``docker`` client but no Compose plugin and no engine, so the first test runs the real
thing.  The Docker engine is a boundary that cannot exist here; ``FakeDockerRunner`` stands in for the
``docker`` executable (it answers ``compose version`` / ``info`` and records every other argv) to test the
engine-down path and the command lines we would run.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from iotctl.errors import MissingDependency, OperationFailed, Unreachable, exit_code_for
from iotctl.stack.docker import DockerStack


@pytest.fixture
def stack(tmp_path) -> DockerStack:
    s = DockerStack(tmp_path / "docker")
    s.render()
    return s


def _compose_really_missing() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return True
    return subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0


def test_up_without_docker_compose_names_the_fix(stack):
    """Real `docker` (or its absence) here: the error names the thing and points at the native stack."""
    if not _compose_really_missing():
        pytest.fail("`docker compose` works on this machine; this test expects it to be missing (see docs/docker.md).")
    for call in (stack.up, stack.down, stack.ps, stack.logs):
        with pytest.raises(MissingDependency) as excinfo:
            call()
        message = str(excinfo.value)
        assert "`docker" in message and "`iotctl stack up`" in message and message.count(".") <= 2
        assert exit_code_for(excinfo.value) == 3


def test_no_docker_on_path(stack):
    s = DockerStack(stack.directory, which=lambda name: None)
    with pytest.raises(MissingDependency, match=r"`docker` not found on PATH.*`iotctl stack up`"):
        s.up()


class FakeDockerRunner:
    """Stands in for the `docker` executable (no engine can run here): `compose version` works, `info` reports
    the engine as ``engine_up``, every other call is recorded and answered with ``stdout``."""

    def __init__(self, engine_up: bool, stdout: str = "", returncode: int = 0, images: set[str] = frozenset()):
        self.engine_up = engine_up
        self.stdout = stdout
        self.returncode = returncode
        self.images = images  # the tags `docker image inspect` finds
        self.calls: list[list[str]] = []

    def __call__(self, argv, **kwargs):
        if argv[1:3] == ["compose", "version"]:
            return subprocess.CompletedProcess(argv, 0, "Docker Compose version v2.29.7\n", "")
        if argv[1] == "info":
            return subprocess.CompletedProcess(argv, 0 if self.engine_up else 1, "", "Cannot connect")
        if argv[1:3] == ["image", "inspect"]:
            return subprocess.CompletedProcess(argv, 0 if argv[3] in self.images else 1, "[]", "No such image")
        self.calls.append(argv)
        return subprocess.CompletedProcess(argv, self.returncode, self.stdout, "boom: container exited")


def _fake_stack(stack, runner):
    return DockerStack(
        stack.directory, runner=runner, which=lambda name: "/usr/bin/docker" if name == "docker" else None
    )


def test_engine_down_is_unreachable(stack):
    with pytest.raises(Unreachable, match=r"Docker engine is not reachable.*`iotctl stack up`") as excinfo:
        _fake_stack(stack, FakeDockerRunner(engine_up=False)).up()
    assert exit_code_for(excinfo.value) == 4


def test_compose_command_lines_carry_no_secret(stack):
    runner = FakeDockerRunner(
        engine_up=True,
        stdout='{"Service":"mosquitto","State":"running","Health":"healthy"}\n'
        '{"Service":"migrate","State":"exited","ExitCode":0}\n',
    )
    s = _fake_stack(stack, runner)
    s.up()
    rows = s.ps()
    s.logs("ingest", tail=50)
    s.down(volumes=True)
    assert [r["Service"] for r in rows] == ["mosquitto", "migrate"]
    verbs = [argv[argv.index("--env-file") + 2] for argv in runner.calls]
    assert verbs == ["up", "ps", "logs", "down"]
    up = runner.calls[0]
    assert up[:2] == ["/usr/bin/docker", "compose"] and "--wait" in up and "--build" in up
    assert up[up.index("-f") + 1] == str(stack.compose_file) and up[up.index("--env-file") + 1] == str(stack.env_file)
    assert "--volumes" in runner.calls[3]
    secrets = [p.read_text().strip() for p in stack.secrets_dir.iterdir()]
    for argv in runner.calls:
        for value in secrets:
            assert all(value not in arg for arg in argv)


def test_failures_and_unknown_service_are_clear(stack, tmp_path):
    failing = _fake_stack(stack, FakeDockerRunner(engine_up=True, returncode=1))
    with pytest.raises(OperationFailed, match=r"`docker compose ps` failed \(exit 1\): boom"):
        failing.ps()
    with pytest.raises(Exception, match="Unknown service `nope`"):
        failing.logs("nope")
    with pytest.raises(OperationFailed, match="No Docker stack in"):
        _fake_stack(DockerStack(tmp_path / "empty"), FakeDockerRunner(engine_up=True)).up()


# ------------------------------------------------------------------ the Docker stack behind the `Stack` interface

PS_ROWS = (
    '{"Service":"mosquitto","State":"running","Health":"healthy"}\n'
    '{"Service":"timescaledb","State":"running","Health":"healthy"}\n'
    '{"Service":"migrate","State":"exited","ExitCode":0}\n'
    '{"Service":"ingest","State":"running","Health":"healthy"}\n'
    '{"Service":"config-server","State":"exited","ExitCode":1}\n'
    '{"Service":"prometheus","State":"running","Health":"healthy"}\n'
)


def _compose_stack(stack, runner, tmp_path, mqtt_port: int = 18830):
    from iotctl.settings import load_settings
    from iotctl.stack.compose import ComposeStack

    settings = load_settings(
        {"state_dir": tmp_path / "state"}, environ={"IOTCTL_CONFIG": "", "IOTCTL_MQTT_PORT": str(mqtt_port)}
    )
    return ComposeStack(settings, compose=_fake_stack(stack, runner))


def _up_without_containers(stack, runner, tmp_path) -> list[str]:
    """`up` against FakeDockerRunner: it starts no container, so the broker reconciliation that follows
    `docker compose up` finds no broker (Unreachable, on a free port); returns the `up` command line."""
    from iotctl.stack.procs import free_port

    with pytest.raises(Unreachable, match="is not reachable"):
        _compose_stack(stack, runner, tmp_path, mqtt_port=free_port()).up()
    return next(argv for argv in runner.calls if "up" in argv)


def test_compose_stack_reports_components_like_the_native_stack(stack, tmp_path):
    from iotctl.stack.base import DONE, RUNNING, STOPPED

    report = _compose_stack(stack, FakeDockerRunner(engine_up=True, stdout=PS_ROWS), tmp_path).status()
    states = {c.name: c.state for c in report.components}
    assert states == {
        "mosquitto": RUNNING,
        "timescaledb": RUNNING,
        "migrate": DONE,  # a finished one-shot job is not down
        "ingest": RUNNING,
        "config-server": STOPPED,
        "prometheus": RUNNING,
        "grafana": STOPPED,  # no container at all
    }
    assert report.component("config-server").detail == "exited"
    assert report.component("mosquitto").endpoint == "mqtt://127.0.0.1:18830"
    data = report.to_dict()
    assert data["kind"] == "docker" and data["engine"] == "docker"
    assert data["credentials"]["files"]["db"] == str(stack.secret_file("db"))
    assert report.down == ["config-server", "grafana"]
    with pytest.raises(Unreachable, match=r"`config-server`, `grafana` not running") as excinfo:
        _compose_stack(stack, FakeDockerRunner(engine_up=True, stdout=PS_ROWS), tmp_path).check(report)
    assert exit_code_for(excinfo.value) == 4


def test_compose_stack_down_reports_what_it_stopped_and_deleted(stack, tmp_path):
    runner = FakeDockerRunner(engine_up=True, stdout=PS_ROWS)
    report = _compose_stack(stack, runner, tmp_path).down(reset=True)
    assert report.stopped == ["prometheus", "ingest", "timescaledb", "mosquitto"]  # reverse start order
    assert report.wiped == ["iots6_pgdata", "iots6_grafana_data", "iots6_prometheus_data"]
    assert "--volumes" in next(argv for argv in runner.calls if "down" in argv)


def test_from_a_source_checkout_the_images_are_built(stack, tmp_path):
    up = _up_without_containers(stack, FakeDockerRunner(engine_up=True, stdout=PS_ROWS), tmp_path)
    assert "--build" in up
    assert "build:" in stack.compose_file.read_text()


def test_from_a_wheel_the_prebuilt_images_are_used_or_named(stack, tmp_path, monkeypatch):
    """Installed from a wheel there are no sources to build the service images from (iotctl.packaged): the
    Compose file has no `build:`, `up` does not build, and a missing image is a one-sentence error naming it."""
    from iotctl import __version__
    from iotctl.stack import docker_options

    monkeypatch.setattr(docker_options, "source_checkout", lambda: None)
    missing = FakeDockerRunner(engine_up=True, stdout=PS_ROWS, images={f"iots6/ingest:{__version__}"})
    with pytest.raises(MissingDependency) as excinfo:
        _compose_stack(stack, missing, tmp_path).up()
    message = str(excinfo.value)
    assert message.startswith(f"Image `iots6/migrate:{__version__}` is not on this machine")
    assert "docker build --target migrate" in message and "`iotctl stack up`" in message
    assert message.count(". ") == 0 and exit_code_for(excinfo.value) == 3
    assert "build:" not in stack.compose_file.read_text()
    assert not any("up" in argv for argv in missing.calls)

    images = {f"iots6/{name}:{__version__}" for name in ("migrate", "ingest", "config-server")}
    up = _up_without_containers(stack, FakeDockerRunner(engine_up=True, stdout=PS_ROWS, images=images), tmp_path)
    assert "--build" not in up and "--wait" in up
