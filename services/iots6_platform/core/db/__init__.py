"""Versioned SQL migrations of the platform's database (``migrate``), run by ``iots6-migrate`` and ``iotctl db``."""
