"""TCP and TLS connections whose every wait is bounded well below the 8.3 s watchdog, and one UDP exchange.

On the Pico W a socket without a timeout waits as long as lwIP does: a broker host that is off leaves
``connect()`` in SYN retries for tens of seconds, and a half-open connection (the peer vanished without a FIN)
leaves a read waiting forever.  Here:

* names go through :class:`iots6.dns.Resolver` (bounded, cached), never ``getaddrinfo`` with a name;
* ``connect`` has ``CONNECT_TIMEOUT_MS``, every read and write ``IO_TIMEOUT_MS``, and a :class:`Link` never
  clears that timeout (micropython-lib's umqtt does: its ``wait_msg`` calls ``setblocking(True)``);
* the watchdog is fed between the steps (DNS, TCP connect, TLS handshake), each of which stays within its bound;
* TLS verifies the server against the CA flashed with the device (``/ca.crt``, PEM) and its hostname, for MQTT and
  HTTPS alike; without a CA the link is encrypted but the server is not authenticated.

The TLS context uses ``ssl.SSLContext`` with ``load_verify_locations(cadata=PEM)``: MicroPython 1.23 or newer (1.22
took a single DER certificate only).
"""

from iots6.compat import ECONNRESET, ETIMEDOUT, join, read_json

CONNECT_TIMEOUT_MS = 3000
IO_TIMEOUT_MS = 2000
CA_FILE = "ca.crt"  # PEM, written at flash time
LEGACY_CA_FILE = "ca.json"  # firmware 0.1: {"cadata_hex": "<DER as hex>"}


def load_ca(root):
    """The CA certificate(s) the device trusts, as bytes (PEM or DER), or None when none was flashed."""
    try:
        with open(join(root, CA_FILE), "rb") as f:
            data = f.read()
        if data.strip():
            return data
    except OSError:
        pass
    legacy = read_json(join(root, LEGACY_CA_FILE), None)
    if isinstance(legacy, dict) and isinstance(legacy.get("cadata_hex"), str):
        import binascii

        try:
            return binascii.unhexlify(legacy["cadata_hex"])
        except ValueError:
            return None
    return None


def make_tls_context(ssl_mod, root):
    """``(SSLContext, verified)`` for client connections: CERT_REQUIRED against the flashed CA when there is one
    (``verified`` True), otherwise CERT_NONE."""
    ctx = ssl_mod.SSLContext(ssl_mod.PROTOCOL_TLS_CLIENT)
    ca = load_ca(root)
    if ca is not None:
        ctx.load_verify_locations(cadata=ca)
        ctx.verify_mode = ssl_mod.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl_mod.CERT_NONE  # encrypted, not authenticated: flash a CA to verify the server
    return ctx, ca is not None


class Link:
    """A connected stream (TCP or TLS) with bounded waits. ``sock`` is what is read and written; ``raw`` is the
    lwIP socket under it, where the timeout lives (MicroPython's SSLSocket has no ``settimeout``)."""

    def __init__(self, raw, sock, timeout_s):
        self.raw = raw
        self.sock = sock
        self.timeout_s = timeout_s
        self.pending = b""

    def write(self, data):
        n = self.sock.write(data)  # blocks at most timeout_s when the send buffer is full, then OSError
        if n is None or n < len(data):
            raise OSError(ETIMEDOUT)
        return n

    def read(self, n):
        """Up to ``n`` bytes (fewer only at the end of the stream); OSError(ETIMEDOUT) when nothing comes."""
        head = b""
        if self.pending:
            head, self.pending = self.pending[:n], self.pending[n:]
            n -= len(head)
            if n == 0:
                return head
        data = self.sock.read(n)
        if data is None:
            raise OSError(ETIMEDOUT)
        return head + data

    def read_exact(self, n):
        data = self.read(n)
        if len(data) != n:
            raise OSError(ECONNRESET)  # closed by the peer in the middle of a packet
        return data

    def readline(self, limit=512):
        line = b""
        if self.pending:
            line, self.pending = self.pending, b""
            if line.endswith(b"\n"):
                return line
        rest = self.sock.readline(limit)
        if rest is None:
            raise OSError(ETIMEDOUT)
        return line + rest

    def ready(self):
        """True when a byte is waiting to be read; never blocks. OSError when the peer closed the stream."""
        if self.pending:
            return True
        self.sock.setblocking(False)
        try:
            b = self.sock.read(1)
        finally:
            self.raw.settimeout(self.timeout_s)  # back to bounded blocking, never to "forever"
        if b is None:
            return False
        if not b:
            raise OSError(ECONNRESET)
        self.pending = b
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self.raw is not self.sock:
            try:
                self.raw.close()
            except OSError:
                pass


class Net:
    """Opens bounded links by name. ``tls_context()`` returns ``(SSLContext, verified)`` (called once, on first
    use)."""

    def __init__(self, socket_mod, resolver, tls_context=None, feed=None, connect_timeout_ms=CONNECT_TIMEOUT_MS,
                 io_timeout_ms=IO_TIMEOUT_MS):
        self.socket = socket_mod
        self.resolver = resolver
        self.tls_factory = tls_context
        self.tls = None
        self.verified = False
        self.feed = feed
        self.connect_timeout_ms = connect_timeout_ms
        self.io_timeout_ms = io_timeout_ms

    def _feed(self):
        if self.feed is not None:
            self.feed()

    def _tls_context(self):
        if self.tls is None:
            if self.tls_factory is None:
                raise OSError(-1, "no TLS on this board")
            self.tls, self.verified = self.tls_factory()
        return self.tls

    def open(self, host, port, tls=False):
        """A connected :class:`Link` to ``host:port``; OSError when the host cannot be reached in time."""
        sock_mod = self.socket
        address = self.resolver.resolve(host)  # bounded, or the cached address
        self._feed()
        ai = sock_mod.getaddrinfo(address, port)[0]  # an IP literal: no DNS query
        raw = sock_mod.socket(ai[0], sock_mod.SOCK_STREAM)
        try:
            raw.settimeout(self.connect_timeout_ms / 1000)
            raw.connect(ai[-1])
            self._feed()
            raw.settimeout(self.io_timeout_ms / 1000)
            sock = raw
            if tls:
                sock = self._tls_context().wrap_socket(raw, server_hostname=host)  # verifies name and chain
                self._feed()
        except BaseException:
            try:
                raw.close()
            except OSError:
                pass
            raise
        return Link(raw, sock, self.io_timeout_ms / 1000)

    def exchange(self, host, port, payload, check, timeout_ms=1500):
        """Send one UDP datagram and return ``check(reply)`` for the first reply ``check`` accepts (it raises
        ValueError for others); OSError(ETIMEDOUT) when none comes within ``timeout_ms``."""
        sock_mod = self.socket
        address = self.resolver.resolve(host)
        self._feed()
        addr = sock_mod.getaddrinfo(address, port)[0][-1]
        s = sock_mod.socket(sock_mod.AF_INET, sock_mod.SOCK_DGRAM)
        try:
            s.settimeout(timeout_ms / 1000)
            s.sendto(payload, addr)
            for _ in range(4):
                reply = s.recv(256)
                try:
                    return check(reply)
                except ValueError:
                    continue
            raise OSError(ETIMEDOUT)
        finally:
            s.close()
