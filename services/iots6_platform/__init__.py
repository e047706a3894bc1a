"""The iots6 platform: the domain both sides share (``core``) and the long-running services (``ingest``,
``config_server``), each with its own entry point and env-var configuration.

This distribution (``iots6-platform``) never imports the operator's CLI (``iotctl``), typer or rich: it is what the
service images install. ``iotctl`` depends on it, not the other way round (see docs/architecture.md).
"""

__version__ = "0.1.0"
