"""iotctl: run a fleet of Raspberry Pi Pico W sensor nodes.

The operator's CLI over the platform (``iots6_platform``: the contract, device config, migrations and services).
iotctl's library layer lives in sub-packages (``iotctl.db``, ``iotctl.broker``, ``iotctl.stack``, ``iotctl.deploy``);
``iotctl.cli`` is only the Typer wiring over them.
"""

__version__ = "0.1.0"
