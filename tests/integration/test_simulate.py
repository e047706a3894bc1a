"""`iotctl device simulate`: virtual nodes running the firmware's own code against the real broker, the real
ingest service and the real database.  Nothing is faked on the data path; only the hardware (I2C chip, pins,
Wi-Fi radio) is simulated, by the simulator itself."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotctl import pki
from iotctl.broker.accounts import ROLE_INGEST, service_username
from iotctl.cli.main import app
from iotctl.devices import DeviceCredentials
from iotctl.secretfiles import write_secret
from iotctl.settings import Settings, load_settings
from iotctl.simulate import Fleet, Node, firmware_path
from iotctl.stack.procs import free_port

from .conftest import start_stack_broker, wait_until


@pytest.fixture
def site(tmp_path, database, ingest_factory):
    """A state dir whose broker runs from the stack layout, the ingest subscribed to that same broker, and the
    env that points iotctl at both and at the test database.  The config server is not running (its port is
    closed): the nodes must publish anyway."""
    state = tmp_path / "state"
    broker, secrets = start_stack_broker(state)
    ingest_pw = secrets[ROLE_INGEST]
    env = {
        "IOTCTL_STATE_DIR": str(state),
        "IOTCTL_MQTT_PORT": str(broker.port),
        "IOTCTL_DATABASE_URL": database.url,
        "IOTCTL_DATABASE_PASSWORD_FILE": str(write_secret(tmp_path / "db.pw", database.password)),
        "IOTCTL_CONFIG_URL": f"http://127.0.0.1:{free_port()}",
        "IOTCTL_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    ingest = ingest_factory(
        INGEST_MQTT_PORT=str(broker.port),
        INGEST_MQTT_USERNAME=service_username(ROLE_INGEST),
        INGEST_MQTT_PASSWORD_FILE=str(write_secret(tmp_path / "ingest-site.pw", ingest_pw)),
    ).start()
    try:
        yield broker, env, ingest
    finally:
        broker.stop()


def firmware_version() -> str:
    """The firmware's own version string (``iots6.FW_VERSION``), which the nodes report as ``fw``."""
    firmware_path()
    from iots6 import FW_VERSION

    return FW_VERSION


def db_seqs(database, prefix: str) -> dict[str, list[int]]:
    """Every stored seq per device (duplicates would show as repeated values)."""
    with database.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id, seq FROM sensor_data WHERE device_id LIKE %s ORDER BY device_id, seq",
            (prefix + "-%",),
        ).fetchall()
    out: dict[str, list[int]] = {}
    for device_id, seq in rows:
        out.setdefault(device_id, []).append(seq)
    return out


def wait_stored(database, prefix: str, expected: dict[str, list[int]], timeout: float) -> dict:
    want = sum(len(s) for s in expected.values())
    wait_until(
        lambda: sum(len(s) for s in db_seqs(database, prefix).values()) >= want,
        timeout,
        0.2,
        f"{want} rows of {prefix}-* in sensor_data",
    )
    time.sleep(0.5)  # a late duplicate would land now; the assertions below would then see it
    return db_seqs(database, prefix)


def test_fleet_of_50_every_published_reading_stored_once(site, database):
    broker, env, ingest = site
    settings = load_settings(environ=env)
    fleet = Fleet(settings, 50, rate=1.0, prefix="fifty", seed=7).start()
    try:
        wait_until(lambda: fleet.totals()["online"] == 50, 15, 0.2, "50 nodes online")
        time.sleep(5)
    finally:
        reports = fleet.stop()
    expected = {r.device_id: r.seqs for r in reports}
    assert all(r.crashes == 0 for r in reports), [r.last_error for r in reports if r.crashes]
    assert all(len(s) >= 4 for s in expected.values()), {d: len(s) for d, s in expected.items()}
    stored = wait_stored(database, "fifty", expected, 20)
    assert stored == expected  # per device: the same seqs, each once
    with database.connect(autocommit=True) as conn:
        values = conn.execute(
            "SELECT min(temperature), max(temperature), min(pressure), max(pressure), min(humidity), "
            "max(humidity), count(DISTINCT temperature) FROM sensor_data WHERE device_id LIKE 'fifty-%' "
            "AND kind = 'telemetry'"
        ).fetchone()
        statuses = conn.execute(
            "SELECT count(*) FROM devices WHERE device_id LIKE 'fifty-%%' AND fw = %s", (firmware_version(),)
        ).fetchone()[0]
    t_lo, t_hi, p_lo, p_hi, h_lo, h_hi, distinct = values
    assert 10 < t_lo <= t_hi < 35 and 950 < p_lo <= p_hi < 1050 and 5 < h_lo <= h_hi < 95
    assert distinct > 50  # readings drift per device, they are not a constant
    assert statuses == 50
    # The nodes' flash: each node has its own directory with the firmware's files.
    node_dir = settings.state_dir / "sim" / "fifty-0001"
    assert (node_dir / "device.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((node_dir / "seq.json").read_text())["limit"] > max(expected["fifty-0001"])


@pytest.mark.slow
def test_broker_outage_readings_buffered_then_delivered_in_order_once(site, database):
    broker, env, ingest = site
    settings = load_settings(environ=env)
    # 4 readings a second and an 8 s outage: each node buffers ~32 readings, and the firmware's MQTT backoff
    # (2, 4, 8 s ±25 %: the third try comes 10.5-17.5 s after the drop) reconnects within ~10 s of the return.
    fleet = Fleet(settings, 10, rate=4.0, prefix="outage", seed=11).start()
    try:
        wait_until(lambda: fleet.totals()["online"] == 10, 15, 0.2, "10 nodes online")
        time.sleep(2)
        broker.stop()
        down_at = datetime.now().astimezone()
        wait_until(lambda: fleet.totals()["buffered"] >= 10, 10, 0.2, "readings buffered on flash")
        time.sleep(8)
        buffered = {r.device_id: r.buffered for r in (n.report() for n in fleet.nodes)}
        assert all(b >= 20 for b in buffered.values()), buffered
        up_at = datetime.now().astimezone()  # from here on the broker is coming back
        broker.start()
        # The firmware reconnects after its own backoff, then replays.
        wait_until(
            lambda: (t := fleet.totals())["online"] == 10 and t["buffered"] == 0,
            90,
            0.5,
            "every node back online with an empty buffer",
        )
        time.sleep(2)
    finally:
        reports = fleet.stop()
    expected = {r.device_id: r.seqs for r in reports}
    assert all(r.dropped == 0 and r.crashes == 0 for r in reports), reports
    stored = wait_stored(database, "outage", expected, 30)
    assert stored == expected
    for device_id, seqs in stored.items():
        assert seqs == list(range(len(seqs))), f"{device_id}: gaps or duplicates"
    with database.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id, seq, time, received_at FROM sensor_data WHERE device_id LIKE %s "
            "AND time > %s AND time < %s ORDER BY device_id, seq",
            ("outage-%", down_at, up_at),
        ).fetchall()
    per_device: dict[str, list] = {}
    for device_id, seq, ts, received in rows:
        per_device.setdefault(device_id, []).append((seq, ts, received))
    assert set(per_device) == set(expected)
    for device_id, window in per_device.items():
        assert len(window) >= 20, (device_id, len(window))  # ~4 readings per second of the outage
        assert all(received > up_at for _, _, received in window), device_id  # stored after the return
        times = [ts for _, ts, _ in window]
        assert times == sorted(times), device_id  # original timestamps, in seq order


def test_cli_simulate_json_counts_match_the_database(site, database):
    broker, env, ingest = site
    result = CliRunner().invoke(
        app,
        ["device", "simulate", "--count", "3", "--rate", "2", "--duration", "3", "--prefix", "cli", "--json"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["nodes"] == 3 and len(summary["devices"]) == 3
    published = {d["device_id"]: d["published"] for d in summary["devices"]}
    assert all(n >= 2 for n in published.values()), published
    total = sum(published.values())
    wait_until(
        lambda: sum(len(s) for s in db_seqs(database, "cli").values()) >= total,
        20,
        0.2,
        "the CLI fleet's readings stored",
    )
    stored = db_seqs(database, "cli")
    assert {d: len(s) for d, s in stored.items()} == published
    for d in summary["devices"]:
        assert d["last_seq"] == max(stored[d["device_id"]]) + d["buffered"]


def test_cli_simulate_rejects_bad_rate_in_one_line(site):
    _, env, _ = site
    result = CliRunner().invoke(app, ["device", "simulate", "--count", "2", "--rate", "0"], env=env)
    assert result.exit_code == 6
    assert "--rate" in result.output and len(result.output.strip().splitlines()) == 1


def _tls_node(settings, tls_broker, device_id: str, password: str, ca_file: Path, seed: int) -> Node:
    creds = DeviceCredentials(
        device_id=device_id,
        mqtt_host="localhost",  # a name: resolved by the host, checked against the certificate by the firmware
        mqtt_port=tls_broker.tls_port,
        mqtt_username=device_id,
        mqtt_password=password,
        topic_base="iots6",
        config_url=f"http://127.0.0.1:{free_port()}",
        config_token="not-used",
        provisioned_at="2026-11-28T00:00:00Z",
        mqtt_tls=True,
        mqtt_ca_file=str(ca_file),
    )
    return Node(settings, creds, period_s=0.25, seed=seed)


def test_nodes_verify_the_broker_by_the_flashed_ca_over_tls(tls_broker, tmp_path):
    """The firmware's own MQTT client over TLS (the firmware's make_tls_context, the CA on the node's flash as
    ca.crt): a node with the broker's CA publishes and gets its PUBACKs; a node flashed with another CA never
    connects, says why, and keeps its readings on flash."""
    settings = Settings(state_dir=tmp_path / "state")
    good_id, bad_id = (f"tls-{uuid.uuid4().hex[:8]}" for _ in range(2))
    other_ca = pki.ensure_ca(tmp_path / "other-ca", common_name="not the broker's CA")
    good = _tls_node(settings, tls_broker, good_id, tls_broker.add_device(good_id), tls_broker.ca.cert, 1)
    bad = _tls_node(settings, tls_broker, bad_id, tls_broker.add_device(bad_id), other_ca.cert, 2)
    assert (good.root / "ca.crt").read_bytes() == tls_broker.ca.cert.read_bytes()
    stop = threading.Event()
    try:
        good.start(stop)
        bad.start(stop)
        wait_until(lambda: good.report().published >= 3, 20, 0.1, "3 readings acknowledged over TLS")
        wait_until(lambda: bad.app.mqtt.last_error, 10, 0.1, "the refused TLS connection")
    finally:
        stop.set()
        for node in (good, bad):
            node.thread.join(15)
    reported = good.report()
    assert reported.crashes == 0 and reported.seqs[:3] == [0, 1, 2], reported
    refused = bad.report()
    assert "certificate verify failed" in bad.app.mqtt.last_error, bad.app.mqtt.last_error
    assert refused.published == 0 and not refused.online and refused.buffered >= 1, refused
