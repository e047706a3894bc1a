"""The operator's side of per-device configuration: the admin HTTP client of the config server.

The key schema and device tokens are the platform's (``iots6_platform.core.devconfig``); the config server serves
them and ``iotctl config`` drives it through :mod:`iotctl.devconfig.client`.
"""
