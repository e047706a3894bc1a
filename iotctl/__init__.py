"""iotctl: run a fleet of Raspberry Pi Pico W sensor nodes.

The library layer lives in sub-packages (``iotctl.contract``, ``iotctl.db``, ``iotctl.broker``, ``iotctl.stack``);
``iotctl.cli`` is only the Typer wiring over them.
"""

__version__ = "0.1.0"
