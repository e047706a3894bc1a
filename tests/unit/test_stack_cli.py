"""`iotctl stack logs` and the `--docker` switch, without starting anything."""

from __future__ import annotations

from typer.testing import CliRunner

from iotctl.cli.main import app


def invoke(tmp_path, *args, env=None):
    return CliRunner().invoke(
        app,
        ["--state-dir", str(tmp_path / "state"), *args],
        env={"IOTCTL_CONFIG": "", **(env or {})},
        catch_exceptions=False,
    )


def test_logs_of_one_component_and_of_all(tmp_path):
    logs = tmp_path / "state" / "logs"
    logs.mkdir(parents=True)
    (logs / "ingest.log").write_text("".join(f"line {i}\n" for i in range(300)))
    one = invoke(tmp_path, "stack", "logs", "ingest", "-n", "3")
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines() == ["line 297", "line 298", "line 299"]
    every = invoke(tmp_path, "stack", "logs", "-n", "1")
    assert every.exit_code == 0, every.output
    assert "==> ingest" in every.stdout and "==> mosquitto" in every.stdout and "line 299" in every.stdout


def test_logs_of_an_unknown_component_is_a_usage_error(tmp_path):
    result = invoke(tmp_path, "stack", "logs", "grafana-x")
    assert result.exit_code == 6
    assert "Unknown component `grafana-x`" in result.output


def test_docker_stack_without_docker_points_at_the_native_stack(tmp_path):
    result = invoke(tmp_path, "stack", "up", "--docker", env={"PATH": str(tmp_path)})
    assert result.exit_code == 3, result.output
    assert "iotctl stack up" in result.output
    assert (tmp_path / "state" / "docker" / "compose.yaml").exists()  # rendered before docker was needed


def test_docker_setting_points_the_cli_at_the_docker_stacks_credentials(tmp_path):
    from iotctl.environments import db_endpoint, mqtt_endpoint
    from iotctl.settings import load_settings
    from iotctl.stack import local_stack
    from iotctl.stack.docker import DockerOptions, DockerStack

    state = tmp_path / "state"
    stack = DockerStack(state / "docker")
    stack.render(DockerOptions())
    (tmp_path / "x.toml").write_text("")
    settings = load_settings({"state_dir": state, "config": str(tmp_path / "x.toml")}, environ={"IOTCTL_DOCKER": "1"})
    assert settings.docker
    assert mqtt_endpoint(settings).password == stack.secret_file("mqtt-operator").read_text().strip()
    assert db_endpoint(settings).password == stack.secret_file("db").read_text().strip()
    assert local_stack(settings).secret_file("admin-token") == stack.secret_file("config-admin-token")
    native = load_settings({"state_dir": state, "config": str(tmp_path / "x.toml")}, environ={})
    assert local_stack(native).secret_file("db") == state / "secrets" / "db.password"


def test_both_stacks_offer_every_member_of_the_stack_interface(tmp_path):
    """`iotctl stack` only sees `iotctl.stack.base.Stack`: `local_stack` picks the implementation from the settings
    (or --docker), and each implementation has every member the interface names."""
    from iotctl.settings import load_settings
    from iotctl.stack import base, local_stack
    from iotctl.stack.compose import ComposeStack
    from iotctl.stack.native import NativeStack

    settings = load_settings({"state_dir": tmp_path / "state"}, environ={"IOTCTL_CONFIG": ""})
    native, docker = local_stack(settings), local_stack(settings, docker=True)
    assert type(native) is NativeStack and type(docker) is ComposeStack
    members = {name for name in vars(base.Stack) if not name.startswith("_")} | set(base.Stack.__annotations__)
    assert {"up", "down", "status", "check", "logs", "secret_file", "location", "kind", "progress"} <= members
    for stack in (native, docker):
        missing = [name for name in members if not hasattr(stack, name)]
        assert not missing, f"{type(stack).__name__} lacks {missing}"
    assert native.location == tmp_path / "state" and docker.location == tmp_path / "state" / "docker"
    assert native.kind == "native" and docker.kind == "docker"
