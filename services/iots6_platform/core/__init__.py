"""The platform's domain, shared by the services and the CLI: the MQTT/database contract, the per-device
configuration schema and tokens, the service settings, the typed errors and the database migrations."""
