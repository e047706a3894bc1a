"""End to end: the real app served over HTTP, the real broker and database, `iotctl config` through CliRunner.

A change made with the CLI is committed, announced as a retained notice on the device's config topic
(received by the device's own broker account, proving its ACL allows it), and fetched once by a client
speaking the device protocol (200, then 304 with If-None-Match).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner
from werkzeug.serving import make_server

from iotctl.cli.main import app as cli
from iotctl.endpoints import MqttEndpoint
from iotctl.mqtt import connect
from iotctl.stack.procs import free_port
from iots6_platform.config_server import close_app, create_app
from iots6_platform.core import contract

from .conftest import ADMIN_TOKEN, register


@pytest.fixture
def live(database, broker, secret_file):
    """The app on a free port in a thread, publishing notices as svc.config."""
    password = broker.config[1]
    flask_app = create_app(
        {
            "DATABASE_URL": database.url,
            "DATABASE_PASSWORD": database.password,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "MQTT_HOST": broker.host,
            "MQTT_PORT": broker.port,
            "MQTT_PASSWORD": password,
        }
    )
    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    env = {"IOTCTL_CONFIG_URL": url, "IOTCTL_CONFIG_ADMIN_TOKEN_FILE": str(secret_file(ADMIN_TOKEN))}
    try:
        yield url, env, flask_app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(flask_app)


def _fetch(url: str, token: str, etag: str | None = None):
    headers = {"Authorization": f"Bearer {token}"}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["ETag"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("ETag"), None


def _cli(env, *args):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_change_is_announced_and_fetched_once(live, database, broker):
    url, env, _ = live
    device = register(database)
    device_password = broker.add_device(device.device_id)
    topic = contract.topic("iots6", device.device_id, contract.CONFIG)
    notices: queue.Queue = queue.Queue()
    subscriber = connect(
        MqttEndpoint(broker.host, broker.port, device.device_id, device_password),
        device.device_id,
        on_message=lambda _c, _u, msg: notices.put((msg.topic, msg.payload, msg.retain)),
    )
    try:
        subscriber.subscribe(topic, qos=1)
        time.sleep(0.3)  # SUBACK before the change, so the live (non-retained-replay) delivery is also seen

        result = _cli(env, "config", "set", device.device_id, "telemetry_interval_s=30", "labels.location=lab")
        assert result.exit_code == 0, result.output
        assert "~ telemetry_interval_s" not in result.stdout  # was absent at device level: an addition
        assert "+ telemetry_interval_s: 30" in result.stdout
        assert '+ labels.location: "lab"' in result.stdout

        got_topic, payload, _retain = notices.get(timeout=10)
        assert got_topic == topic
        notice = json.loads(payload)
        assert notice["version"] == 1
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()

    config_url = f"{url}/v1/devices/{device.device_id}/config"
    status, etag, body = _fetch(config_url, device.token)
    assert status == 200
    assert etag == f'"{notice["etag"]}"'  # the notice names exactly what the device will get
    assert body["telemetry_interval_s"] == 30 and body["labels"] == {"location": "lab"} and body["version"] == 1
    status, etag_again, body = _fetch(config_url, device.token, etag)
    assert (status, etag_again, body) == (304, etag, None)

    # The notice is retained: a device that connects later still finds it.
    later: queue.Queue = queue.Queue()
    late = connect(
        MqttEndpoint(broker.host, broker.port, device.device_id, device_password),
        device.device_id,
        on_message=lambda _c, _u, msg: later.put((msg.payload, msg.retain)),
    )
    try:
        late.subscribe(topic, qos=1)
        payload, retain = later.get(timeout=10)
        assert retain and json.loads(payload) == notice
    finally:
        late.loop_stop()
        late.disconnect()

    history = json.loads(_cli(env, "config", "history", device.device_id, "--json").stdout)
    assert history[0]["version"] == 1
    assert history[0]["change"]["telemetry_interval_s"] == {"old": None, "new": 30}


def test_fleet_change_notifies_every_device(live, database, broker):
    url, env, flask_app = live
    devices = [register(database), register(database)]
    seen: queue.Queue = queue.Queue()
    operator = connect(
        MqttEndpoint(broker.host, broker.port, *broker.operator),
        on_message=lambda _c, _u, msg: seen.put((msg.topic, json.loads(msg.payload))),
    )
    try:
        for d in devices:
            operator.subscribe(contract.topic("iots6", d.device_id, contract.CONFIG), qos=1)
        time.sleep(0.3)
        result = _cli(env, "config", "set", "--fleet", "oled_brightness=100", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["change"] == {"oled_brightness": {"old": None, "new": 100}}
        got = {}
        deadline = time.monotonic() + 10
        while len(got) < len(devices) and time.monotonic() < deadline:
            topic, notice = seen.get(timeout=max(0.1, deadline - time.monotonic()))
            got[topic] = notice
    finally:
        operator.loop_stop()
        operator.disconnect()
    assert set(got) == {contract.topic("iots6", d.device_id, contract.CONFIG) for d in devices}
    for d in devices:
        status, etag, body = _fetch(f"{url}/v1/devices/{d.device_id}/config", d.token)
        assert status == 200 and body["oled_brightness"] == 100
        assert etag == f'"{got[contract.topic("iots6", d.device_id, contract.CONFIG)]["etag"]}"'
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline and "iots6_config_notices_published_total 2.0" not in text:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        time.sleep(0.05)
    assert "iots6_config_notices_published_total 2.0" in text
    assert "iots6_config_notices_failed_total 0.0" in text


def test_cli_get_diff_push_and_errors(live, database, tmp_path):
    _url, env, _ = live
    device = register(database)
    folder = tmp_path.joinpath(*[f"a-long-directory-name-{i:02d}" for i in range(8)])  # longer than any terminal
    folder.mkdir(parents=True)
    doc = folder / "dev.toml"
    doc.write_text('telemetry_interval_s = 15\n[labels]\nname = "porch"\n')

    diff = _cli(env, "config", "diff", str(doc), "--device", device.device_id)
    assert diff.exit_code == 0, diff.output
    assert "+ telemetry_interval_s: 15" in diff.stdout and '+ labels.name: "porch"' in diff.stdout

    refused = _cli(env, "config", "push", str(doc), "--device", device.device_id)  # no TTY, no --yes
    assert refused.exit_code == 6 and "pass `--yes`" in refused.stderr, refused.output

    pushed = _cli(env, "config", "push", str(doc), "--device", device.device_id, "--yes", "--json")
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["version"] == 1

    got = json.loads(_cli(env, "config", "get", device.device_id, "--json").stdout)
    assert got["overrides"] == {"telemetry_interval_s": 15, "labels": {"name": "porch"}}
    assert got["effective"]["telemetry_interval_s"] == 15
    table = _cli(env, "config", "get", device.device_id)
    assert table.exit_code == 0 and "telemetry_interval_s" in table.stdout

    again = _cli(env, "config", "push", str(doc), "--device", device.device_id)
    assert again.exit_code == 0, again.output
    # One line, whatever COLUMNS says and however long the path (issue #10): logs and scripts read it.
    assert f"device `{device.device_id}` already matches `{doc}`; nothing to push." in again.stderr.splitlines()


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The real entry point, for exit codes and the one-line error on stderr."""
    return subprocess.run(
        [sys.executable, "-c", "from iotctl.cli.main import run; run()", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_errors_are_one_line_with_exit_codes(live, database, secret_file):
    _url, env, _ = live
    device = register(database)
    cases = [
        (
            env,
            ["config", "set", device.device_id, "telemetry_interval_s=2"],
            6,
            "`telemetry_interval_s` must be",
        ),
        (env, ["config", "set", device.device_id, "colour=red"], 6, "`colour` is not a configuration key"),
        (env, ["config", "get", "ghost"], 7, "Device `ghost` is not registered"),
        (
            {**env, "IOTCTL_CONFIG_ADMIN_TOKEN_FILE": str(secret_file("wrong"))},
            ["config", "get", "--fleet"],
            5,
            "refused the admin token",
        ),
        (
            {**env, "IOTCTL_CONFIG_URL": f"http://127.0.0.1:{free_port()}"},
            ["config", "get", "--fleet"],
            4,
            "is not reachable",
        ),
    ]
    for case_env, args, code, words in cases:
        result = _run(case_env, *args)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.startswith("error: ") and words in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_entry_point_serves_under_gunicorn_and_stops_on_sigterm(database, tmp_path, secret_file):
    """`python -m iots6_platform.config_server` as the native stack starts it: env vars, secrets in 0600 files."""
    import signal

    port = free_port()
    home = tmp_path / "home"  # gunicorn >= 25.1 put its control socket in ~/.gunicorn (XDG_RUNTIME_DIR unset)
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONFIG_SERVER_")},
        "HOME": str(home),
        "XDG_RUNTIME_DIR": "",
        "CONFIG_SERVER_DATABASE_URL": database.url,
        "CONFIG_SERVER_DATABASE_PASSWORD_FILE": str(secret_file(database.password)),
        "CONFIG_SERVER_ADMIN_TOKEN_FILE": str(secret_file(ADMIN_TOKEN)),
        "CONFIG_SERVER_PORT": str(port),
    }
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "iots6_platform.config_server"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline, status = time.monotonic() + 30, None
        while time.monotonic() < deadline and status != 200:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except OSError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "server.log").read_text()
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for _ in range(4):  # spread over both workers; /metrics sums them
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/devices", headers=admin))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'iots6_config_requests_total{endpoint="devices.list_devices",status="200"} 4.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "server.log").read_text()
    assert ADMIN_TOKEN not in (tmp_path / "server.log").read_text()
    assert list(home.iterdir()) == [], "the server wrote to HOME"
