"""The ingest service: readings from Mosquitto into ``sensor_data``, exactly once. Run ``iots6-ingest``."""
