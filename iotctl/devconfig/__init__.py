"""Per-device configuration: key schema (validation, merge, diff), device tokens, admin HTTP client.

The config server (``services/config_server``) serves what this package defines; ``iotctl config`` drives it.
"""
