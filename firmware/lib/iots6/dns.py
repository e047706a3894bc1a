"""DNS over UDP with a timeout, and a cache that keeps the last good address through an outage.

Why not ``socket.getaddrinfo``: on the Pico W it is lwIP's resolver, which has no timeout a caller can set and
retries for ~7 s per DNS server (~14 s with two), longer than the 8.3 s watchdog.  An internet outage with the LAN
up (the router answers nothing for outside names) would reset the board on every NTP resync.  Here each query is
one UDP exchange bounded by a socket timeout (1.5 s per server, the watchdog fed between servers), and a name
that resolved once keeps its address while the DNS is down (serve-stale, RFC 8767): the broker on the LAN stays
reachable by name.  The last addresses are kept on flash (``dns.json``, written only when one changes), so a
device that boots during a DNS outage still finds its broker.  IPv4 literals are used as they are; names ending
in ``.local`` are asked over mDNS (224.0.0.251:5353, a one-shot "legacy unicast" query, RFC 6762 6.7).
"""

from iots6.compat import join, read_json, write_json

CACHE_FILE = "dns.json"
QUERY_TIMEOUT_MS = 1500
MAX_SERVERS = 2  # lwIP keeps two DNS servers from DHCP; asking more only lengthens an outage
TTL_MIN_S = 60
TTL_MAX_S = 86400
MDNS = ("224.0.0.251", 5353)
RCODE_NXDOMAIN = 3


class DNSError(OSError):
    """A name that could not be resolved: ``args[0]`` is -2 (what lwIP's getaddrinfo raises), ``args[1]`` why."""


def is_ipv4(text):
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            return False
    return True


def build_query(name, qid):
    """A standard query (RD set) for the A record of ``name``."""
    out = bytearray((qid >> 8, qid & 0xFF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0))
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        if not 1 <= len(raw) <= 63:
            raise DNSError(-2, "bad name")
        out.append(len(raw))
        out.extend(raw)
    out.extend(b"\x00\x00\x01\x00\x01")  # root, QTYPE A, QCLASS IN
    return bytes(out)


def _skip_name(msg, i):
    """Index after the (possibly compressed) name at ``i``; ValueError on a malformed one."""
    for _ in range(128):
        if i >= len(msg):
            raise ValueError("truncated name")
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1
    raise ValueError("name too long")


def parse_answer(msg, qid):
    """``(ipv4 text, ttl seconds)`` of the first A record in a reply to query ``qid``.

    ValueError for a reply to another query or a malformed one; DNSError for an error code or no address."""
    if len(msg) < 12 or (msg[0] << 8 | msg[1]) != qid or not msg[2] & 0x80:
        raise ValueError("not a reply to our query")
    rcode = msg[3] & 0x0F
    if rcode:
        raise DNSError(-2, "no such name" if rcode == RCODE_NXDOMAIN else "server error %d" % rcode)
    qd = msg[4] << 8 | msg[5]
    an = msg[6] << 8 | msg[7]
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    for _ in range(an):
        i = _skip_name(msg, i)
        if i + 10 > len(msg):
            raise ValueError("truncated answer")
        rtype = msg[i] << 8 | msg[i + 1]
        ttl = msg[i + 4] << 24 | msg[i + 5] << 16 | msg[i + 6] << 8 | msg[i + 7]
        rdlen = msg[i + 8] << 8 | msg[i + 9]
        i += 10
        if i + rdlen > len(msg):
            raise ValueError("truncated record")
        if rtype == 1 and rdlen == 4:
            return "%d.%d.%d.%d" % (msg[i], msg[i + 1], msg[i + 2], msg[i + 3]), ttl
        i += rdlen
    raise DNSError(-2, "no address")


class Resolver:
    """Name -> IPv4 address, each network wait bounded; see the module docstring.

    ``socket_mod`` is MicroPython's ``socket`` (or a fake of it), ``servers()`` returns the DNS servers' addresses
    (from DHCP), ``feed()`` feeds the watchdog between servers.
    """

    def __init__(self, socket_mod, clock, servers, root=None, feed=None, timeout_ms=QUERY_TIMEOUT_MS, rand=None):
        self.socket = socket_mod
        self.clock = clock
        self.servers = servers
        self.path = join(root, CACHE_FILE) if root is not None else None
        self.feed = feed
        self.timeout_ms = timeout_ms
        if rand is None:
            import random

            rand = random.getrandbits
        self.rand = rand
        self.cache = {}  # name -> [address, ticks when it expires, or None: known only from flash (stale)]
        self.saved = {}
        if self.path is not None:
            saved = read_json(self.path, {}) or {}
            if isinstance(saved, dict):
                for name in saved:
                    if isinstance(saved[name], str) and is_ipv4(saved[name]):
                        self.cache[name] = [saved[name], None]
                        self.saved[name] = saved[name]
        self.last_error = None
        self.queries = 0

    def _feed(self):
        if self.feed is not None:
            self.feed()

    def resolve(self, name):
        """The address of ``name``. Raises DNSError when it is unknown and no answer came in time."""
        if is_ipv4(name):
            return name
        clock = self.clock
        entry = self.cache.get(name)
        if entry is not None and entry[1] is not None and clock.ticks_diff(entry[1], clock.ticks_ms()) > 0:
            return entry[0]
        try:
            address, ttl = self._query(name)
        except OSError as exc:
            self.last_error = exc
            nxdomain = len(exc.args) > 1 and exc.args[1] == "no such name"
            if entry is not None and not nxdomain:
                return entry[0]  # serve stale: the last good address, while the DNS does not answer
            raise
        ttl = min(max(ttl, TTL_MIN_S), TTL_MAX_S)
        self.cache[name] = [address, clock.ticks_add(clock.ticks_ms(), ttl * 1000)]
        if self.path is not None and self.saved.get(name) != address:
            self.saved[name] = address
            try:
                write_json(self.path, self.saved)
            except OSError:
                pass  # flash full: the address is still cached in RAM
        return address

    def _query(self, name):
        if name.endswith(".local"):
            targets = [MDNS]
        else:
            targets = []
            for server in self.servers() or ():
                if server and server != "0.0.0.0" and len(targets) < MAX_SERVERS:
                    targets.append((server, 53))
        if not targets:
            raise DNSError(-2, "no DNS server")
        last = None
        for target in targets:
            self._feed()
            self.queries += 1
            try:
                return self._ask(name, target)
            except DNSError as exc:
                if len(exc.args) > 1 and exc.args[1] == "no such name":
                    raise
                last = exc
            except (OSError, ValueError) as exc:
                last = exc
        self._feed()
        raise DNSError(-2, "DNS: %s" % (last,))

    def _ask(self, name, target):
        sock_mod = self.socket
        qid = self.rand(16)
        addr = sock_mod.getaddrinfo(target[0], target[1])[0][-1]  # an IP literal: answered without a query
        s = sock_mod.socket(sock_mod.AF_INET, sock_mod.SOCK_DGRAM)
        try:
            s.settimeout(self.timeout_ms / 1000)
            s.sendto(build_query(name, qid), addr)
            for _ in range(4):  # a stray reply to an older query is skipped, a few at most
                reply = s.recv(512)  # OSError(ETIMEDOUT) after the timeout
                try:
                    return parse_answer(reply, qid)
                except ValueError:
                    continue
            raise DNSError(-2, "no reply to our query")
        finally:
            s.close()
