# FakeUmqtt: stands in for micropython-lib's umqtt.simple, which is installed on a board with mip and is not
# available to the WebAssembly interpreter here. Only the exception class is faked, with the real one's base
# (a plain Exception, not an OSError); clients in tests are FakeMQTTClient (fakenet.py).


class MQTTException(Exception):
    pass
