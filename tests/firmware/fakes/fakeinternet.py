"""FakeInternet: the network a Pico W sees, with lwIP's blocking behaviour on the virtual clock.

The WebAssembly interpreter has no sockets, so ``socket`` and ``ssl`` are fakes (socket.py and ssl.py in this
folder delegate here).  They behave like MicroPython's lwIP sockets and mbedTLS on the rp2 port, including the
ways they fail, and they spend *virtual* time doing so (``FakeClock.block``), so a call that would hang a board
trips the fake watchdog:

* ``getaddrinfo`` with a name is lwIP's resolver: it asks the LAN's DNS server; when nothing answers it waits
  ``lwip_dns_ms`` per DNS server (7 s, ~14 s with two) and raises OSError(-2).  No timeout can be set.
* ``connect`` to a host that is off (SYNs unanswered) waits the socket timeout - or, with none set, lwIP's own
  SYN retries (``syn_giveup_ms``) - then OSError(ETIMEDOUT); a closed port is OSError(ECONNREFUSED) at once.
* reads wait for data up to the socket timeout, then OSError(ETIMEDOUT); with no timeout they wait forever, which
  here means until the watchdog fires (or ``BlockedForever`` when none is armed).  ``setblocking(True)`` clears a
  timeout, as on the board.  Non-blocking reads with nothing waiting return None.
* a half-open connection (``conn.silent``: the peer vanished without FIN or RST, e.g. its host lost power)
  swallows writes and never answers.
* hosts outside 192.168.0.0/16 are unreachable while ``internet_up`` is False (the LAN stays up).

Servers are objects attached to a host's TCP/UDP port: TCP ones get ``accept(conn)`` and talk bytes through
``conn`` (see fakeservers.py); UDP ones answer ``datagram(data)``.  Everything is in-process and deterministic.
"""

import time

import fakeclock

AF_INET = 2
SOCK_STREAM = 1
SOCK_DGRAM = 2
EBADF = 9
EAGAIN = 11
ECONNRESET = 104
ENOTCONN = 107
ETIMEDOUT = 110
ECONNREFUSED = 111
DNS_FAILED = -2  # what MicroPython's lwIP getaddrinfo raises when a name cannot be resolved
CURRENT = [None]


def current():
    return CURRENT[0]


def is_ipv4(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


class FakeHost:
    def __init__(self, ip, name=None):
        self.ip = ip
        self.name = name
        self.state = "up"  # "up", "off" (SYNs and datagrams unanswered), "refuse" (RST to every TCP connect)
        self.tcp = {}
        self.udp = {}


class FakeCert:
    """A server certificate as the fake TLS sees it: who signed it and which names it covers."""

    def __init__(self, issuer, names):
        self.issuer = issuer
        self.names = tuple(names)


def fake_ca_pem(issuer):
    """The bytes of a CA 'certificate' the fake ssl module accepts (a PEM wrapper around the issuer's name)."""
    return ("-----BEGIN CERTIFICATE-----\nFAKECA %s\n-----END CERTIFICATE-----\n" % issuer).encode()


class FakeConn:
    """The server's end of a TCP connection."""

    def __init__(self, net, sock):
        self.net = net
        self.sock = sock
        self.silent = False  # half-open: nothing goes either way any more, and nobody says so
        self.open = True
        self.session = None

    def send(self, data, delay_ms=0):
        if self.silent or not self.open:
            return
        self.sock.inbox.append([self.net.clock.ticks + self.net.rtt_ms + delay_ms, bytes(data)])

    def fin(self, delay_ms=0):
        """Close politely: the client reads what was sent, then the end of the stream."""
        if self.open and not self.silent:
            self.sock.inbox.append([self.net.clock.ticks + self.net.rtt_ms + delay_ms, None])
        self.open = False

    def reset(self):
        self.open = False
        self.sock.reset_flag = True


class FakeSocket:
    def __init__(self, net, af=AF_INET, kind=SOCK_STREAM, proto=0):
        self.net = net
        self.kind = kind
        self.timeout = None  # None: block forever; 0: non-blocking; else seconds
        self.conn = None
        self.service = None
        self.closed = False
        self.inbox = []  # [ready_at ticks, bytes or None (end of stream)]
        self.reset_flag = False
        self.eof = False
        net.sockets_made += 1

    # -- settings
    def settimeout(self, t):
        self.timeout = t

    def setblocking(self, flag):
        self.timeout = None if flag else 0

    # -- waiting
    def _limit_ms(self):
        return None if self.timeout is None else int(self.timeout * 1000)

    def _fail_after(self, natural_ms, error):
        """A wait that ends in failure: after the socket timeout or ``natural_ms`` (lwIP's own), whichever first."""
        limit = self._limit_ms()
        if limit == 0:
            raise OSError(EAGAIN)
        if limit is None or limit >= natural_ms:
            if natural_ms is None:
                self.net.clock.block(None)
            self.net.clock.block(natural_ms)
            raise OSError(error)
        self.net.clock.block(limit)
        raise OSError(ETIMEDOUT)

    def _ready(self):
        """True when data or the end of the stream is waiting now; waits (within the timeout) for the next
        chunk in flight; False for a non-blocking socket with nothing waiting; OSError(ETIMEDOUT) on timeout."""
        clock = self.net.clock
        while True:
            if self.reset_flag:
                raise OSError(ECONNRESET)
            if self.eof:
                return True
            if self.inbox and self.inbox[0][0] <= clock.ticks:
                return True
            limit = self._limit_ms()
            if self.inbox:
                wait = self.inbox[0][0] - clock.ticks
                if limit is None or wait <= limit:
                    if limit == 0:
                        return False
                    clock.block(wait)
                    continue
            if limit == 0:
                return False
            if limit is None:
                clock.block(None)
            clock.block(limit)
            raise OSError(ETIMEDOUT)

    def _take(self, n):
        """Up to ``n`` bytes that are here now (b"" at the end of the stream)."""
        out = b""
        clock = self.net.clock
        while self.inbox and self.inbox[0][0] <= clock.ticks and (n < 0 or len(out) < n):
            chunk = self.inbox[0][1]
            if chunk is None:
                self.inbox.pop(0)
                self.eof = True
                break
            want = len(chunk) if n < 0 else n - len(out)
            out += chunk[:want]
            if want >= len(chunk):
                self.inbox.pop(0)
            else:
                self.inbox[0][1] = chunk[want:]
        return out

    # -- stream calls
    def _check_open(self):
        if self.closed:
            raise OSError(EBADF)
        if self.kind == SOCK_STREAM and self.conn is None:
            raise OSError(ENOTCONN)

    def read(self, n=-1):
        """MicroPython's stream read: until ``n`` bytes or the end of the stream; partial data on a non-blocking
        socket; None when nothing is waiting on a non-blocking one."""
        self._check_open()
        out = b""
        while n < 0 or len(out) < n:
            if not self._ready():
                return out if out else None
            if self.eof and not (self.inbox and self.inbox[0][1] is not None):
                break
            out += self._take(n - len(out) if n >= 0 else -1)
            if self.eof:
                break
        return out

    def recv(self, n):
        self._check_open()
        if self.kind == SOCK_DGRAM:
            return self._recv_datagram()
        if not self._ready():
            raise OSError(EAGAIN)
        return self._take(n)

    def readline(self, limit=-1):
        self._check_open()
        out = b""
        while limit < 0 or len(out) < limit:
            if not self._ready():
                return out if out else None
            if self.eof:
                break
            out += self._take(1)
            if out.endswith(b"\n"):
                break
        return out

    def write(self, data):
        self._check_open()
        if self.reset_flag:
            raise OSError(ECONNRESET)
        data = data.encode() if isinstance(data, str) else bytes(data)  # MicroPython streams take str too
        self.net.bytes_out += len(data)
        conn = self.conn
        if conn.open and not conn.silent and conn.session is not None:
            conn.session.received(data)
        return len(data)

    send = write

    def sendall(self, data):
        self.write(data)

    # -- connections
    def connect(self, addr):
        net = self.net
        ip, port = addr[0], addr[1]
        net.connects += 1
        host = net.route(ip)
        if host is None or host.state == "off":
            self._fail_after(net.syn_giveup_ms, ETIMEDOUT)  # SYNs go unanswered
        service = host.tcp.get(port)
        net.clock.block(net.rtt_ms)
        if host.state == "refuse" or service is None or getattr(service, "refusing", False):
            raise OSError(ECONNREFUSED)
        self.conn = FakeConn(net, self)
        self.service = service
        self.conn.session = service.accept(self.conn)

    def close(self):
        if self.closed:
            return
        self.closed = True
        conn = self.conn
        if conn is not None and conn.open:
            conn.open = False
            if conn.session is not None and hasattr(conn.session, "closed_by_client"):
                conn.session.closed_by_client()

    # -- datagrams
    def sendto(self, data, addr):
        if self.closed:
            raise OSError(EBADF)
        net = self.net
        ip, port = addr[0], addr[1]
        host = net.route(ip)
        if host is None or host.state == "off":
            return len(data)
        service = host.udp.get(port)
        if service is None:
            return len(data)
        reply = service.datagram(bytes(data))
        if reply is not None:
            self.inbox.append([net.clock.ticks + net.rtt_ms + getattr(service, "delay_ms", 0), bytes(reply)])
        return len(data)

    def _recv_datagram(self):
        if not self._ready():
            raise OSError(EAGAIN)
        return self.inbox.pop(0)[1]

    def recvfrom(self, n):
        return self._recv_datagram(), ("0.0.0.0", 0)


class FakeInternet:
    """The LAN (192.168.0.0/16) and the internet beyond it, with their hosts and services; see the module."""

    def __init__(self, clock=None):
        self.clock = clock or fakeclock.current()
        self.hosts = {}
        self.internet_up = True
        self.dns_servers = ["192.168.1.1"]
        self.lwip_dns_ms = 7000
        self.syn_giveup_ms = 75000
        self.rtt_ms = 5
        self.sockets_made = 0
        self.connects = 0
        self.bytes_out = 0
        self.getaddrinfo_names = 0
        # The true UTC time of this world (the device's RTC is the clock's epoch, wrong until it is set).
        self.true_epoch0 = time.mktime((2025, 6, 1, 12, 0, 0, 0, 0)) * 1000 - self.clock.ticks
        CURRENT[0] = self

    def true_ms(self):
        return self.true_epoch0 + self.clock.ticks

    def add_host(self, ip, name=None):
        host = FakeHost(ip, name)
        self.hosts[ip] = host
        return host

    def lan(self, ip):
        return ip.startswith("192.168.")

    def route(self, ip):
        host = self.hosts.get(ip)
        if host is None:
            return None
        if not self.lan(ip) and not self.internet_up:
            return None
        return host

    def socket(self, af=AF_INET, kind=SOCK_STREAM, proto=0):
        return FakeSocket(self, af, kind, proto)

    def getaddrinfo(self, host, port, af=0, kind=0, proto=0, flags=0):
        """lwIP's getaddrinfo: instant for an IP literal; a name is asked of the DNS servers with lwIP's own
        retries and no timeout the caller can shorten."""
        if is_ipv4(host):
            return [(AF_INET, kind or SOCK_STREAM, proto, "", (host, port))]
        self.getaddrinfo_names += 1
        for server in self.dns_servers:
            dns = self.route(server)
            service = dns.udp.get(53) if dns is not None and dns.state == "up" else None
            answer = service.lookup(host) if service is not None else None
            if answer == "nxdomain":
                self.clock.block(self.rtt_ms)
                raise OSError(DNS_FAILED)
            if answer is not None:
                self.clock.block(self.rtt_ms)
                return [(AF_INET, kind or SOCK_STREAM, proto, "", (answer, port))]
            self.clock.block(self.lwip_dns_ms)  # lwIP: DNS_MAX_RETRIES with growing waits, per server
        raise OSError(DNS_FAILED)
