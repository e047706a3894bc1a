-- Maintenance on TimescaleDB (Timescale License): compression, retention and rollups run as background-job
-- policies; iots6_maintain() exists for parity and reports the jobs.

CREATE FUNCTION iots6_maintain() RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('jobs', count(*)) FROM timescaledb_information.jobs
    WHERE hypertable_name IN ('sensor_data', 'sensor_data_1m', 'sensor_data_1h')
$$;
