"""A fleet connected at once (#16 goal 4): N devices, each on its own MQTT connection with its own
dynamic-security identity, publishing QoS 1 telemetry at ``hz`` for ``seconds``, into the real ingest.

The load generator is one asyncio process speaking MQTT 3.1.1 over plain sockets (CONNECT, PUBLISH QoS 1, PUBACK;
nothing else), so one core holds thousands of connections: not the firmware simulator, whose per-node interpreter
would measure itself.  Each device publishes on a fixed schedule (its phase spread over the period); the
generator's own lag (send time - scheduled time) is reported so a slow generator is never read as a slow ingest.
Latency is publish -> committed, as in bench/latency.py.  Zero loss means: every PUBLISH acknowledged by the broker
and stored exactly once.  The broker's and the ingest's CPU and memory are sampled every second (/proc).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import BASE, Ingest, Stack, device_ids, log, wait_until
from iotctl.stack.procs import free_port
from iots6_platform.core import contract

CONNECT_CONCURRENCY = 200
CONNECT_TIMEOUT_S = 60.0


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE toward ``wanted`` (up to the hard limit); return the new soft
    limit.  Called before the broker starts, so the broker (a child) inherits it too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, username: str, password: str, keepalive: int) -> bytes:
    body = _str("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive)  # 3.1.1; user, password, clean session
    body += _str(client_id) + _str(username) + _str(password)
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    body = _str(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _length(len(body)) + body  # PUBLISH, QoS 1


class ProcessSampler:
    """CPU seconds and resident memory of some pids, sampled every second from /proc."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = {name: self._cpu(pid) for name, pid in pids.items()}
        self.peak_rss = dict.fromkeys(pids, 0)

    def _cpu(self, pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def _rss(self, pid: int) -> int:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self.page

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak_rss[name] = max(self.peak_rss[name], self._rss(pid))

    def result(self, seconds: float) -> dict:
        out = {}
        for name, pid in self.pids.items():
            cpu = self._cpu(pid) - self.start[name]
            out[name] = {
                "cpu_seconds": round(cpu, 1),
                "cpu_pct_of_one_core": round(100 * cpu / seconds, 1),
                "peak_rss_mib": round(self.peak_rss[name] / 2**20, 1),
            }
        return out


class Device:
    def __init__(self, device_id: str, password: str):
        self.id = device_id
        self.password = password
        self.topic = contract.topic(BASE, device_id, contract.TELEMETRY).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None


class Generator:
    def __init__(self, port: int, devices: list[Device], hz: float, seconds: float):
        self.port, self.devices, self.hz, self.seconds = port, devices, hz, seconds
        self.published = self.acked = self.refused = 0
        self.lags: list[float] = []
        self.ack_ms: list[float] = []

    async def _connect(self, device: Device, limit: asyncio.Semaphore) -> None:
        async with limit:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(connect_packet(device.id, device.id, device.password, keepalive=60))
            await writer.drain()
            connack = await reader.readexactly(4)
            if connack[0] != 0x20 or connack[3] != 0:
                writer.close()
                raise RuntimeError(f"`{device.id}` refused by the broker (CONNACK {connack[3]})")
            device.reader, device.writer = reader, writer

    async def _run_device(self, device: Device, phase: float, t0: float) -> None:
        period = 1.0 / self.hz
        k = 0
        loop = asyncio.get_running_loop()
        while True:
            scheduled = t0 + phase + k * period
            if scheduled - t0 >= self.seconds:
                return
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self.lags.append(now - scheduled)
            reading = contract.Reading(datetime.now(UTC), device.id, "telemetry", k, 21.0, 40.0, 1010.0, None, None,
                                       -55, k * 10, "1.2.0")  # fmt: skip
            packet_id = k % 65535 + 1
            device.writer.write(publish_packet(device.topic, packet_id, contract.make_payload(reading).encode()))
            self.published += 1
            ack = await device.reader.readexactly(4)
            if ack[0] != 0x40 or struct.unpack("!H", ack[2:4])[0] != packet_id:
                raise RuntimeError(f"`{device.id}`: expected PUBACK {packet_id}, got {ack!r}")
            self.acked += 1
            self.ack_ms.append((loop.time() - now) * 1000)
            k += 1

    async def connect_all(self) -> float:
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(self._connect(d, limit) for d in self.devices)), CONNECT_TIMEOUT_S * 5)
        return time.perf_counter() - started

    async def publish_all(self, sampler: ProcessSampler) -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.5
        period = 1.0 / self.hz
        n = len(self.devices)
        tasks = [asyncio.ensure_future(self._run_device(d, period * i / n, t0)) for i, d in enumerate(self.devices)]
        done = asyncio.ensure_future(asyncio.gather(*tasks))
        while not done.done():
            sampler.sample()
            await asyncio.wait({done}, timeout=1.0)
        done.result()
        return loop.time() - t0

    async def close(self) -> None:
        for d in self.devices:
            if d.writer is not None:
                d.writer.write(b"\xe0\x00")  # DISCONNECT
                d.writer.close()
        await asyncio.gather(*(d.writer.wait_closed() for d in self.devices if d.writer), return_exceptions=True)


def _pct(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(len(ranked) * q))] if ranked else 0.0


PERCENTILES = """
SELECT count(*), count(DISTINCT (device_id, seq)),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms), max(ms),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY recv_ms)
FROM (SELECT device_id, seq, extract(epoch FROM pg_xact_commit_timestamp(xmin) - time) * 1000 AS ms,
             extract(epoch FROM received_at - time) * 1000 AS recv_ms
      FROM sensor_data) AS t
"""


def run(stack: Stack, devices: int, hz: float, seconds: float, ingest_env: dict[str, str] | None = None) -> dict:
    dbname = stack.database("bench_fleet")
    client_id = "bench-fleet"
    stack.drop_sessions()  # earlier runs' sessions would queue this run's messages too
    stack.presubscribe(client_id, contract.subscription(BASE))
    worker = Ingest(stack, dbname, client_id, extra_env=ingest_env or {}, http_port=free_port()).start()
    ids = device_ids(devices)
    fleet = [Device(d, stack.device_passwords[d]) for d in ids]
    generator = Generator(stack.mosquitto.port, fleet, hz, seconds)
    try:
        wait_until(worker.healthy, 30, 0.1, "ingest health")
        sampler = ProcessSampler(
            {"broker": stack.mosquitto.pid(), "ingest": worker.proc.pid, "load_generator": os.getpid()}
        )

        async def main() -> tuple[float, float]:
            log(f"fleet: connecting {devices:,} devices (own accounts, MQTT 3.1.1, {CONNECT_CONCURRENCY} at a time)")
            connected = await generator.connect_all()
            log(f"fleet: {devices:,} connected in {connected:.1f} s; publishing at {hz:g} Hz for {seconds:g} s")
            try:
                ran = await generator.publish_all(sampler)
            finally:
                sampler.sample()
                await generator.close()
            return connected, ran

        connected, ran = asyncio.run(main())
        usage = sampler.result(ran)
        total = generator.published

        def complete():
            worker.check_alive()
            with stack.connect(dbname, autocommit=True) as conn:
                return conn.execute("SELECT count(*) FROM sensor_data").fetchone()[0] >= total

        wait_until(complete, 60, 0.2, f"{total} fleet rows")
    finally:
        worker.stop()
    with stack.connect(dbname, autocommit=True) as conn:
        rows, distinct, (p50, p95, p99), worst, (r50, r95, r99) = conn.execute(PERCENTILES).fetchone()
    return {
        "devices": devices,
        "hz_per_device": hz,
        "seconds": seconds,
        "connections_in_one_process": devices,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "connect_seconds": round(connected, 1),
        "published": total,
        "acked": generator.acked,
        "rows": rows,
        "lost": total - distinct,
        "duplicates": rows - distinct,
        "msgs_per_s": round(total / ran, 1),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(float(worst), 1),
        # Where the time goes: device -> broker -> ingest's socket (received_at - ts), and the device's PUBACK.
        "publish_to_received_p50_p95_p99_ms": [round(r50, 1), round(r95, 1), round(r99, 1)],
        "puback_p50_ms": round(statistics.median(generator.ack_ms), 1) if generator.ack_ms else 0,
        "puback_p99_ms": round(_pct(generator.ack_ms, 0.99), 1),
        "generator_lag_p99_ms": round(_pct(generator.lags, 0.99) * 1000, 1),
        "generator_lag_max_ms": round(max(generator.lags, default=0) * 1000, 1),
        "generator_lag_median_ms": round(statistics.median(generator.lags) * 1000, 1) if generator.lags else 0,
        "processes": usage,
    }
