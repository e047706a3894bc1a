"""Fake of MicroPython's ``socket`` module (lwIP on the rp2 port), backed by the test's FakeInternet: see
fakeinternet.py for how its calls block and fail on the virtual clock."""

import fakeinternet

AF_INET = fakeinternet.AF_INET
SOCK_STREAM = fakeinternet.SOCK_STREAM
SOCK_DGRAM = fakeinternet.SOCK_DGRAM
IPPROTO_TCP = 6
IPPROTO_UDP = 17
SOL_SOCKET = 1
SO_REUSEADDR = 4


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return fakeinternet.current().getaddrinfo(host, port, af, type, proto, flags)


def socket(af=AF_INET, type=SOCK_STREAM, proto=0):
    return fakeinternet.current().socket(af, type, proto)
