"""Fake of MicroPython's ``ssl`` (micropython-lib's wrapper over the built-in mbedTLS ``tls`` module, 1.23+).

What it checks is what mbedTLS checks: with ``CERT_REQUIRED`` the server's certificate must be signed by a CA
given to ``load_verify_locations`` and cover ``server_hostname``; otherwise OSError(-9984)
(MBEDTLS_ERR_X509_CERT_VERIFY_FAILED).  ``CERT_NONE`` accepts any certificate (encrypted, not authenticated).
A peer that is not a TLS server ends the handshake with OSError(-29312) (MBEDTLS_ERR_SSL_CONN_EOF).  The
handshake reads through the raw socket, so it waits (and times out) as the socket does, and it costs
``HANDSHAKE_MS`` of virtual time (ECDHE on a 125 MHz RP2040).  The returned socket has read/readline/write/
setblocking/close and no ``settimeout``, like MicroPython's SSLSocket.  Data is not encrypted (nothing to see).
"""

PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1
CERT_NONE = 0
CERT_OPTIONAL = 1
CERT_REQUIRED = 2
HANDSHAKE_MS = 1200
X509_CERT_VERIFY_FAILED = -9984
SSL_CONN_EOF = -29312
X509_BAD_INPUT_DATA = -10240


class SSLContext:
    def __init__(self, protocol=PROTOCOL_TLS_CLIENT):
        self.protocol = protocol
        self.verify_mode = CERT_NONE
        self.cas = []
        self.wrapped = 0

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile:
            with open(cafile, "rb") as f:
                cadata = f.read()
        text = bytes(cadata).decode()
        if "-----BEGIN CERTIFICATE-----" not in text or "FAKECA " not in text:
            raise OSError(X509_BAD_INPUT_DATA)
        for line in text.splitlines():
            if line.startswith("FAKECA "):
                self.cas.append(line[7:].strip())

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        self.wrapped += 1
        clock = sock.net.clock
        service = sock.service
        if sock.conn is None or sock.conn.silent or not sock.conn.open:
            sock._ready()  # the ServerHello never comes: waits the socket's timeout (or forever)
            raise OSError(SSL_CONN_EOF)
        clock.block(HANDSHAKE_MS)
        cert = getattr(service, "cert", None)
        if cert is None:
            raise OSError(SSL_CONN_EOF)
        trusted = cert.issuer in self.cas and server_hostname in cert.names
        if self.verify_mode == CERT_REQUIRED and not trusted:
            raise OSError(X509_CERT_VERIFY_FAILED)
        service.tls_clients = getattr(service, "tls_clients", 0) + 1
        return FakeSSLSocket(sock, self.verify_mode == CERT_REQUIRED)


class FakeSSLSocket:
    def __init__(self, raw, verified):
        self.raw = raw
        self.verified = verified

    def read(self, n=-1):
        return self.raw.read(n)

    def readline(self, limit=-1):
        return self.raw.readline(limit)

    def write(self, data):
        return self.raw.write(data)

    def setblocking(self, flag):
        self.raw.setblocking(flag)

    def close(self):
        self.raw.close()


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE, cadata=None,
                server_hostname=None, do_handshake=True):
    ctx = SSLContext(PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT)
    if cadata:
        ctx.load_verify_locations(cadata=cadata)
    ctx.verify_mode = cert_reqs
    return ctx.wrap_socket(sock, server_hostname=server_hostname)
