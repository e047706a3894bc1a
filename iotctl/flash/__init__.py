"""Putting the firmware and a device's identity on a Pico W over USB serial, through the official `mpremote`.

``board`` talks to one board (raw REPL via ``mpremote.transport_serial.SerialTransport``), ``discover`` finds
attached boards, ``firmware`` builds the local file set (optionally cross-compiled with ``mpy-cross``), and
``flasher`` plans and runs a flash.  No Typer or Rich here: typed errors from ``iotctl.flash.errors`` and data.
"""
