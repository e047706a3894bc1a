"""Per-device configuration: the key schema (validation, merge, diff) and device tokens.

The config server serves what this package defines; ``iotctl config`` drives it over HTTP.
"""
