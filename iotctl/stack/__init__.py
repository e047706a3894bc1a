"""The native local stack: Mosquitto, PostgreSQL, ingest and config server as child processes under a state dir."""
