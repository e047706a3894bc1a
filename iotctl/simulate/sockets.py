"""MicroPython's ``socket`` and ``ssl`` modules, as the firmware's network layer uses them, over CPython's.

The firmware's :class:`iots6.net.Net` and ``Link`` (bounded connect, TLS verified against the flashed CA, every
read bounded), its MQTT client (:mod:`iots6.mqttclient`) and its HTTP config client run on top unchanged; only
the calls that differ between the two interpreters are adapted here:

* a MicroPython socket is a stream (``read(n)``, None from a non-blocking read with nothing waiting;
  ``readline``; ``write``), a CPython socket has ``recv``/``sendall``: :class:`StreamSocket`;
* MicroPython's ``SSLContext.wrap_socket`` wraps any stream and its ``load_verify_locations(cadata=...)`` takes PEM
  or DER bytes; CPython's wraps only its own sockets and takes PEM only as text: :class:`SSLContext`.  A
  non-blocking read of a TLS socket with nothing waiting raises ``SSLWantReadError`` in CPython (None above);
* names are resolved by the host (``getaddrinfo``: /etc/hosts and the system's DNS), not by the firmware's UDP
  resolver, which asks the DNS server DHCP gave the board: :class:`HostResolver`.

:func:`node_net` assembles them into the firmware's ``Net`` for one node.  The firmware tests that drive the MQTT
client against a real Mosquitto (tests/firmware/test_mqttclient_mosquitto.py) use the same shims.
"""

from __future__ import annotations

import socket
import ssl
from types import SimpleNamespace


class StreamSocket:
    """A CPython socket with MicroPython's stream calls; after :meth:`SSLContext.wrap_socket` it is TLS."""

    def __init__(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM, proto: int = 0) -> None:
        self.s = socket.socket(family, kind, proto)

    def settimeout(self, seconds):
        self.s.settimeout(seconds)

    def setblocking(self, flag):
        self.s.setblocking(flag)

    def connect(self, address):
        self.s.connect(address)

    def write(self, data):
        self.s.sendall(data)
        return len(data)

    def read(self, n):
        """``n`` bytes, fewer at the end of the stream; None when non-blocking and nothing is waiting."""
        out = b""
        while len(out) < n:
            try:
                chunk = self.s.recv(n - len(out))
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return out or None
            if not chunk:
                break
            out += chunk
        return out

    def readline(self, limit=-1):
        out = b""
        while not out.endswith(b"\n") and (limit < 0 or len(out) < limit):
            chunk = self.read(1)
            if not chunk:
                break
            out += chunk
        return out

    def sendto(self, data, address):
        return self.s.sendto(data, address)

    def recv(self, n):
        return self.s.recv(n)

    def close(self):
        self.s.close()


def _getaddrinfo(host, port, *args):
    return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)


#: MicroPython's ``socket`` module, as far as iots6.net and iots6.dns use it.
SOCKET = SimpleNamespace(
    AF_INET=socket.AF_INET,
    SOCK_STREAM=socket.SOCK_STREAM,
    SOCK_DGRAM=socket.SOCK_DGRAM,
    getaddrinfo=_getaddrinfo,
    socket=StreamSocket,
)


class SSLContext:
    """MicroPython's ``ssl.SSLContext`` (client side) over CPython's."""

    def __init__(self, protocol: int) -> None:
        self._ctx = ssl.SSLContext(protocol)

    @property
    def verify_mode(self):
        return self._ctx.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        if mode == ssl.CERT_NONE:
            self._ctx.check_hostname = False  # MicroPython checks the name only when it verifies the chain
        self._ctx.verify_mode = mode

    def load_verify_locations(self, cadata):
        if isinstance(cadata, bytes | bytearray) and bytes(cadata).lstrip().startswith(b"-----BEGIN"):
            cadata = bytes(cadata).decode("ascii")  # PEM: CPython takes it as text, DER as bytes
        self._ctx.load_verify_locations(cadata=cadata)

    def wrap_socket(self, sock: StreamSocket, server_hostname=None) -> StreamSocket:
        """The handshake, over ``sock``'s connection; ``sock`` itself then reads and writes TLS."""
        sock.s = self._ctx.wrap_socket(sock.s, server_hostname=server_hostname)
        return sock


#: MicroPython's ``ssl`` module, as far as iots6.net uses it.
SSL = SimpleNamespace(
    PROTOCOL_TLS_CLIENT=ssl.PROTOCOL_TLS_CLIENT,
    CERT_NONE=ssl.CERT_NONE,
    CERT_REQUIRED=ssl.CERT_REQUIRED,
    SSLContext=SSLContext,
)


class HostResolver:
    """``iots6.dns.Resolver``'s one call, answered by the host's resolver (OSError when the name is unknown)."""

    def __init__(self) -> None:
        self.feed = None  # the app sets the watchdog's feed here; the host's resolver does not wait for long

    def resolve(self, name: str) -> str:
        return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]


def node_net(root: str):
    """The firmware's ``Net`` for a node whose flash is ``root``: TLS verified against ``<root>/ca.crt`` by the
    firmware's own ``make_tls_context``, as on the board."""
    from iots6.net import Net, make_tls_context

    return Net(SOCKET, HostResolver(), lambda: make_tls_context(SSL, root))
