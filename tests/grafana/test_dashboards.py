"""The provisioned Grafana dashboards: valid dashboard JSON, two datasource uids, and SQL that really runs.

There is no Grafana binary here, so every panel query, annotation query and template-variable query is
expanded by :func:`expand` below (a small stand-in for Grafana's own expansion, covering exactly the macros
the dashboards use) for a fixed time range and run against the real test database (PostgreSQL 15 with our
migrations), after inserting devices, readings, events and dead letters and refreshing the rollups.  A macro
the expander does not know fails the test, so a new macro in a dashboard needs a line here first.

Panels on the Prometheus datasource (the ingest health dashboard's `Service: …` panels) are checked here for
structure only; tests/integration/test_grafana_promql.py checks their PromQL against a real ingest's /metrics.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from iotctl.stack.docker import DockerOptions

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DS_UID = "iots6-timescaledb"
DS_TYPE = "grafana-postgresql-datasource"
PROM_UID = "iots6-prometheus"
PROM_TYPE = "prometheus"
SQL_DS = {"type": DS_TYPE, "uid": DS_UID}
PROM_DS = {"type": PROM_TYPE, "uid": PROM_UID}
ALL_VALUE = "__all"


# --------------------------------------------------------------------------------------------- macro expander
def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(interval: str) -> int:
    """Grafana's interval strings (`30s`, `1m`, `1h`, `1d`), optionally quoted, as seconds."""
    m = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    assert m, f"unsupported interval {interval!r}"
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _sqlstring(values: list[str]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def expand(sql: str, time_from: datetime, time_to: datetime, interval_s: int, variables: dict[str, list[str]]) -> str:
    """Expand a dashboard query as Grafana does for the PostgreSQL datasource with ``timescaledb: false``.

    Frontend (template) variables first, as Grafana's frontend does before sending the query:
      ``${name:sqlstring}`` -> quoted, comma-separated values; ``$__interval_ms`` -> milliseconds;
      ``$__interval`` -> e.g. ``1m``.
    Then the backend macros (grafana-postgresql-datasource macros.go):
      ``$__timeFilter(c)``            -> ``c BETWEEN '<from>' AND '<to>'`` (RFC 3339, UTC)
      ``$__timeFrom()``/``$__timeTo()`` -> ``'<from>'`` / ``'<to>'``
      ``$__timeGroup(c, i)``          -> ``floor(extract(epoch from c)/s)*s`` (s = interval in seconds)
      ``$__timeGroupAlias(c, i)``     -> the same plus ``AS "time"``
    """

    def variable(m: re.Match) -> str:
        name, fmt = m.group(1), m.group(2)
        assert name in variables, f"unknown template variable ${name}"
        assert fmt == "sqlstring", f"unsupported variable format {fmt!r} (use ${{{name}:sqlstring}})"
        return _sqlstring(variables[name])

    sql = re.sub(r"\$\{(\w+):(\w+)\}", variable, sql)
    sql = sql.replace("$__interval_ms", str(interval_s * 1000))
    minutes, rest = divmod(interval_s, 60)
    sql = sql.replace("$__interval", f"{minutes}m" if minutes and not rest else f"{interval_s}s")

    def group(m: re.Match, alias: bool) -> str:
        column, interval = (a.strip() for a in m.group(1).split(",", 1))
        s = _seconds(interval)
        return f"floor(extract(epoch from {column})/{s})*{s}" + (' AS "time"' if alias else "")

    sql = re.sub(r"\$__timeGroupAlias\(([^()]*)\)", lambda m: group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^()]*)\)", lambda m: group(m, False), sql)
    sql = re.sub(
        r"\$__timeFilter\(([^()]*)\)",
        lambda m: f"{m.group(1).strip()} BETWEEN '{_rfc3339(time_from)}' AND '{_rfc3339(time_to)}'",
        sql,
    )
    sql = sql.replace("$__timeFrom()", f"'{_rfc3339(time_from)}'").replace("$__timeTo()", f"'{_rfc3339(time_to)}'")
    leftover = re.findall(r"\$\{?\w+", sql)
    assert not leftover, f"unexpanded macro or variable {leftover} in:\n{sql}"
    return sql


def test_expander_matches_grafana_forms():
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    sql = expand(
        "SELECT $__timeGroupAlias(time, $__interval), $__interval_ms FROM t "
        "WHERE $__timeFilter(time) AND d IN (${site:sqlstring}) AND $__timeTo()::timestamptz > $__timeFrom()",
        t0,
        t0 + timedelta(hours=1),
        60,
        {"site": ["a", "o'b"]},
    )
    assert sql == (
        'SELECT floor(extract(epoch from time)/60)*60 AS "time", 60000 FROM t '
        "WHERE time BETWEEN '2024-05-01T12:00:00Z' AND '2024-05-01T13:00:00Z' AND d IN ('a','o''b') "
        "AND '2024-05-01T13:00:00Z'::timestamptz > '2024-05-01T12:00:00Z'"
    )


# --------------------------------------------------------------------------------------------- structure
def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, sql) for every SQL panel target, annotation and query variable."""
    found = []
    for p in _panels(dashboard):
        for t in p.get("targets", []):
            if t["datasource"] == PROM_DS:
                continue  # PromQL: tests/integration/test_grafana_promql.py
            found.append((f"panel {p['id']} {p['title']!r} {t['refId']}", t["rawSql"]))
    for a in dashboard["annotations"]["list"]:
        if "target" in a:
            found.append((f"annotation {a['name']!r}", a["target"]["rawSql"]))
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            found.append((f"variable ${v['name']}", v["query"]))
    return found


def test_dashboards_exist():
    assert {p.name for p in DASHBOARDS} == {"device.json", "fleet.json", "ingest.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path):
    text = path.read_text()
    dash = json.loads(text)
    assert "${DS_" not in text and "__inputs" not in dash, "dashboards reference the provisioned uid, not inputs"
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert re.fullmatch(r"iots6-[a-z0-9-]+", dash["uid"]) and dash["title"].startswith("iots6 / ")
    assert dash["time"]["from"].startswith("now-")
    ids = [p["id"] for p in _panels(dash)]
    assert ids and len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in _panels(dash):
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")), p["title"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        overlap = {(g["y"] + dy, g["x"] + dx) for dy in range(g["h"]) for dx in range(g["w"])}
        assert not cells & overlap, f"panel {p['title']!r} overlaps another"
        cells |= overlap
        assert p["type"] in {"timeseries", "stat", "table", "state-timeline", "row"}, p["type"]
        assert p["title"] and p.get("description"), f"panel {p['id']} needs a title and a description"
        assert p["datasource"] in (SQL_DS, PROM_DS), f"{p['title']}: a provisioned datasource uid"
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], f"{p['title']}: targets use the panel's datasource"
            if t["datasource"] == PROM_DS:
                assert t["editorMode"] == "code" and t["refId"] and t["expr"].strip() and "rawSql" not in t
                continue
            assert t["rawQuery"] is True and t["editorMode"] == "code" and t["refId"]
            assert t["format"] in {"time_series", "table"}
            if t["format"] == "time_series":
                assert 'AS "time"' in expand(t["rawSql"], *_FIXED_RANGE, 60, _VARS_PLACEHOLDER) or re.search(
                    r"SELECT\s+time\b", t["rawSql"]
                ), f"{p['title']}: a time series needs a time column"
    for v in dash["templating"]["list"]:
        assert v["datasource"] == SQL_DS and v["type"] == "query"
    # Every datasource reference in the file is a provisioned one (or Grafana's built-in annotations).
    for ref in re.findall(r'"uid":\s*"([^"]+)"', text):
        assert ref in {DS_UID, PROM_UID, "-- Grafana --", dash["uid"]}, ref


def test_ingest_dashboard_has_sql_and_promql_panels():
    """The ingest health dashboard keeps its database panels and adds the service-metrics panels."""
    panels = _panels(_load(GRAFANA / "dashboards" / "ingest.json"))
    by_ds = {
        "sql": [p for p in panels if p["datasource"] == SQL_DS],
        "prom": [p for p in panels if p["datasource"] == PROM_DS],
    }
    assert len(by_ds["sql"]) >= 7 and len(by_ds["prom"]) >= 6
    exprs = " ".join(t["expr"] for p in by_ds["prom"] for t in p["targets"])
    for metric in (
        "messages_received_total",
        "readings_stored_total",
        "dead_letters_total",
        "duplicates_total",
        "db_errors_total",
        "batch_size_bucket",
        "mqtt_connected",
    ):
        assert f"iots6_ingest_{metric}" in exprs, metric
    assert "histogram_quantile(0.99, sum by (le) (rate(iots6_ingest_commit_lag_seconds_bucket" in exprs
    # The other dashboards stay on the database only.
    for name in ("device.json", "fleet.json"):
        assert PROM_UID not in (GRAFANA / "dashboards" / name).read_text(), name


_FIXED_RANGE = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 6, tzinfo=UTC))
_VARS_PLACEHOLDER = {"device": ["d"], "site": [ALL_VALUE]}


def test_provisioning_files():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "timescaledb.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == DS_UID and source["type"] == DS_TYPE and source["editable"] is False
    password = source["secureJsonData"]["password"]
    assert re.fullmatch(r"\$__env\{\w+\}", password), "the password must come from the environment, never a literal"
    assert "password" not in json.dumps(source["jsonData"]).lower()
    prom = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = prom["datasources"]
    assert source["uid"] == PROM_UID and source["type"] == PROM_TYPE and source["editable"] is False
    assert source["url"] == "http://prometheus:9090" and source["isDefault"] is False
    assert "secureJsonData" not in source and "basicAuth" not in source
    # Same as the stack's scrape interval, so $__rate_interval spans enough scrapes.
    assert source["jsonData"]["timeInterval"] == f"{DockerOptions().scrape_interval_s}s"
    boards = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "iots6.yaml").read_text())
    (provider,) = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/iots6"


# ------------------------------------------------------------------------------------- SQL against the DB
NOW = datetime.now(UTC).replace(microsecond=0)
RANGES = {  # name: (from, to, $__interval seconds) -- one per raw/rollup tier of the device dashboard
    "1h": (NOW - timedelta(hours=1), NOW, 10),
    "2d": (NOW - timedelta(days=2), NOW, 600),
    "30d": (NOW - timedelta(days=30), NOW, 3600 * 6),
}


@pytest.fixture
def seeded(database, device_id):
    """Two devices at two sites, 36 h of telemetry (the last hour every 30 s), events and dead letters."""
    other = device_id + "-b"
    with database.connect(autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, last_seen, fw, rssi, status, status_at, labels) VALUES "
            '(%s, now(), \'1.2.0\', -61, \'online\', now(), \'{"location": "greenhouse", "name": "north"}\'),'
            "(%s, now() - interval '3 hours', '1.1.0', -80, 'offline', now(), '{\"location\": \"shed\"}')",
            (device_id, other),
        )
        conn.execute(
            """
            INSERT INTO sensor_data (time, device_id, kind, seq, temperature, humidity, pressure, rssi, fw,
                                     received_at)
            SELECT t, d, 'telemetry', extract(epoch FROM t)::bigint, 20 + random(), 50 + random(),
                   1013 + random(),
                   -60, '1.2.0', t + interval '350 milliseconds'
            FROM unnest(%s::text[]) AS d,
                 generate_series(now() - interval '36 hours', now() - interval '1 hour',
                                 interval '10 minutes') AS t
            UNION ALL
            SELECT t, d, 'telemetry', extract(epoch FROM t)::bigint, 21, 55, 1012, -60, '1.2.0',
                   t + interval '1 second'
            FROM unnest(%s::text[]) AS d,
                 generate_series(now() - interval '59 minutes', now() - interval '30 seconds',
                                 interval '30 seconds') AS t
            """,
            ([device_id, other], [device_id, other]),
        )
        conn.execute(
            """
            INSERT INTO sensor_data (time, device_id, kind, seq, motion, switch)
            SELECT now() - n * interval '7 minutes', %s, k, 1000000 + n,
                   CASE WHEN k = 'motion' THEN n %% 2 = 0 END, CASE WHEN k = 'switch' THEN n %% 3 = 0 END
            FROM generate_series(1, 40) AS n, unnest(ARRAY['motion', 'switch']) AS k
            """,
            (device_id,),
        )
        # Drops the devices reported (the fleet's "Readings dropped" panel and the `dropped` column).
        conn.execute(
            "UPDATE sensor_data SET dropped = 3 WHERE device_id = %s AND kind = 'telemetry' AND time IN "
            "(SELECT time FROM sensor_data WHERE device_id = %s AND time > now() - interval '50 minutes' "
            "ORDER BY time LIMIT 10)",
            (other, other),
        )
        conn.execute(
            "UPDATE devices SET dropped_total = (SELECT sum(dropped) FROM sensor_data WHERE device_id = %s), "
            "dropped_at = now() - interval '10 minutes' WHERE device_id = %s",
            (other, other),
        )
        conn.execute(
            """
            INSERT INTO dead_letter (received_at, topic, payload, reason, detail, device_id)
            SELECT now() - n * interval '13 minutes', 'iots6/' || %s || '/telemetry', '{"t": "hot"}'::bytea,
                   (ARRAY['not_json', 'bad_type', 'unknown_device'])[1 + n %% 3],
                   'field `t` must be a number.', %s
            FROM generate_series(1, 30) AS n
            """,
            (device_id, device_id),
        )
        refreshed = conn.execute("SELECT iots6_refresh_rollups(now() - interval '2 days', now())").fetchone()[0]
        assert refreshed > 0
        # Written around the ingest: catch latest_reading up as after a bulk load (the ingest keeps it itself).
        assert conn.execute("SELECT iots6_refresh_latest_reading()").fetchone()[0] == 2
    return database, device_id


def _variables(conn, dashboard: dict, device_id: str) -> dict[str, list[str]]:
    """Resolve the variables as Grafana would: site=All (its allValue), device=our seeded device."""
    values = {"site": [ALL_VALUE]}
    for v in dashboard["templating"]["list"]:
        if v["name"] == "device":
            rows = [r[0] for r in conn.execute(expand(v["query"], *RANGES["1h"][:2], 10, values)).fetchall()]
            assert device_id in rows
            values["device"] = [device_id]
    values.setdefault("device", [device_id])
    return values


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_runs_and_returns_rows(seeded, path: Path):
    database, device_id = seeded
    dash = _load(path)
    queries = _queries(dash)
    assert queries
    with database.connect(autocommit=True) as conn:
        variables = _variables(conn, dash, device_id)
        time_from, time_to, interval_s = RANGES["1h"]
        for where, raw in queries:
            sql = expand(raw, time_from, time_to, interval_s, variables)
            try:
                rows = conn.execute(sql).fetchall()
            except Exception as exc:  # name the panel in the failure
                pytest.fail(f"{path.name} {where}: {exc}\n{sql}")
            assert rows, f"{path.name} {where} returned no rows:\n{sql}"


@pytest.mark.parametrize("range_name", list(RANGES))
def test_device_panels_use_each_tier(seeded, range_name: str):
    """The environment panels return data for a short (raw), a medium (1-minute) and a long (1-hour) range,
    from exactly the tier meant for it."""
    database, device_id = seeded
    dash = _load(GRAFANA / "dashboards" / "device.json")
    time_from, time_to, interval_s = RANGES[range_name]
    expected = {"1h": "FROM sensor_data\n", "2d": "FROM sensor_data_1m\n", "30d": "FROM sensor_data_1h\n"}[range_name]
    with database.connect(autocommit=True) as conn:
        variables = {"site": [ALL_VALUE], "device": [device_id]}
        for p in _panels(dash):
            if p["title"] not in ("Temperature", "Humidity", "Pressure"):
                continue
            raw = p["targets"][0]["rawSql"]
            assert raw.count("UNION ALL") == 2, p["title"]
            sql = expand(raw, time_from, time_to, interval_s, variables)
            rows = conn.execute(sql).fetchall()
            assert rows and all(r[1] is not None for r in rows), f"{p['title']} {range_name}: no values"
            # Exactly one branch is live: run it alone and get the same rows.
            code = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
            branch = next(b for b in code.split("UNION ALL") if expected in b)
            alone = conn.execute(branch.strip().removesuffix("ORDER BY 1").strip().strip("()") + " ORDER BY 1")
            assert alone.fetchall() == rows, f"{p['title']} {range_name} did not come from {expected.strip()}"


def test_fleet_dashboard_shows_what_devices_dropped(seeded):
    """The `dropped` counts devices send reach the fleet dashboard: per device in the table, over time in a panel."""
    database, device_id = seeded
    other = device_id + "-b"
    dash = _load(GRAFANA / "dashboards" / "fleet.json")
    panels = {p["title"]: p for p in _panels(dash)}
    variables = {"site": [ALL_VALUE]}
    time_from, time_to, interval_s = RANGES["1h"]
    with database.connect(autocommit=True) as conn:
        expected = conn.execute("SELECT sum(dropped) FROM sensor_data WHERE device_id = %s", (other,)).fetchone()[0]
        assert expected > 0
        cur = conn.execute(expand(panels["Devices"]["targets"][0]["rawSql"], time_from, time_to, interval_s, variables))
        names = [c.name for c in cur.description]
        table = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
        assert (table[other]["dropped"], table[device_id]["dropped"]) == (expected, 0)
        sql = expand(panels["Readings dropped on devices"]["targets"][0]["rawSql"], time_from, time_to, 600, variables)
        series = conn.execute(sql).fetchall()
    assert {row[1] for row in series} == {other}
    assert sum(row[2] for row in series) == expected


def test_current_values_come_from_latest_reading(seeded):
    """The fleet table and the device status row show each device's newest stored reading (latest_reading)."""
    database, device_id = seeded
    fleet = {p["title"]: p for p in _panels(_load(GRAFANA / "dashboards" / "fleet.json"))}
    device = {p["title"]: p for p in _panels(_load(GRAFANA / "dashboards" / "device.json"))}
    variables = {"site": [ALL_VALUE], "device": [device_id]}
    time_from, time_to, interval_s = RANGES["1h"]
    with database.connect(autocommit=True) as conn:
        newest = conn.execute(
            "SELECT temperature, humidity, pressure FROM sensor_data WHERE device_id = %s AND kind = 'telemetry' "
            "ORDER BY time DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        for panel in (fleet["Devices"], device["Status"]):
            raw = panel["targets"][0]["rawSql"]
            assert "latest_reading" in raw, panel["title"]
            cur = conn.execute(expand(raw, time_from, time_to, interval_s, variables))
            names = [c.name for c in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            row = next(r for r in rows if r.get("device", device_id) == device_id)
            assert (row["temperature"], row["humidity"], row["pressure"]) == newest, panel["title"]
