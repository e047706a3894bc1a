"""Benchmarks of the data path (``make bench`` / ``python -m bench``): not tests, they print one JSON document.

The harness starts its own Mosquitto and PostgreSQL in a temp dir on free ports (the same ``iotctl.stack`` runners
the tests use), runs the real ingest process against them, and rewrites ``docs/benchmarks.md`` with the figures.
"""
