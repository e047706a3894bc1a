"""A simulated fleet: N virtual Pico W nodes that run the firmware's own code under CPython (docs/simulator.md).

Each node is ``iots6.app.App`` from the firmware iotctl ships (the scheduler, seq counter, offline buffer, MQTT
session, config client, input debouncing and the BME280 driver, unchanged), down to the network: the firmware's
own MQTT client (:mod:`iots6.mqttclient`) over its bounded links (:mod:`iots6.net`), TLS verified against the
environment's CA as on the board.  Around it:

* :mod:`.firmware`: ``import iots6`` finds the firmware's package (a finder for that one name, not ``sys.path``);
* :mod:`.sockets`: MicroPython's ``socket``/``ssl`` calls over CPython's, and the host's resolver for names;
* :mod:`.hardware` (and :mod:`.bme280chip`): the I2C bus and BME280, the PIR and door pins, the Wi-Fi radio;
* :mod:`.node`: one node's flash directory (``<state_dir>/sim/<device_id>/``: ``device.json``, ``ca.crt``,
  ``seq.json``, the offline buffer, the config cache) and its thread; NTP does nothing (the host clock is set);
* :mod:`.fleet`: the fleet the CLI runs (``iotctl device simulate``).

What is real: the broker, each device's provisioned broker account and config token, the config server over
HTTP(S) (an outage only shows as an error), and everything downstream (ingest, database).
"""

from iotctl.simulate.firmware import firmware_path
from iotctl.simulate.fleet import MAX_COUNT, MAX_RATE_HZ, Fleet, device_ids, validate
from iotctl.simulate.node import Node, NodeReport

__all__ = ["MAX_COUNT", "MAX_RATE_HZ", "Fleet", "Node", "NodeReport", "device_ids", "firmware_path", "validate"]
