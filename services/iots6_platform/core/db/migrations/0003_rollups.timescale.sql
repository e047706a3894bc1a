-- Rollups on TimescaleDB (Timescale License): hierarchical continuous aggregates with refresh policies,
-- real-time (materialized_only = false) so the newest minutes show too.  Same names and columns as the rollup
-- tables of the other editions, so dashboards do not care: sum() of a bigint is numeric, hence the ::bigint casts
-- in sensor_data_1h (tests/timescale compares the column types with the plain-PostgreSQL edition's).

CREATE MATERIALIZED VIEW sensor_data_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 minute', time) AS bucket, device_id, count(*) AS samples,
       avg(temperature) AS temperature_avg, min(temperature) AS temperature_min, max(temperature) AS temperature_max,
       avg(humidity) AS humidity_avg, avg(pressure) AS pressure_avg,
       count(*) FILTER (WHERE kind = 'motion') AS motion_events,
       count(*) FILTER (WHERE kind = 'switch') AS switch_events
FROM sensor_data
GROUP BY 1, 2
WITH NO DATA;

SELECT add_continuous_aggregate_policy('sensor_data_1m',
    start_offset => interval '3 hours', end_offset => interval '1 minute', schedule_interval => interval '1 minute');

-- Computed from the raw readings (not hierarchically from sensor_data_1m): an average of minute averages weighted
-- by `samples` would count motion/switch events that carry no temperature.
CREATE MATERIALIZED VIEW sensor_data_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', time) AS bucket, device_id, count(*) AS samples,
       avg(temperature) AS temperature_avg, min(temperature) AS temperature_min, max(temperature) AS temperature_max,
       avg(humidity) AS humidity_avg, avg(pressure) AS pressure_avg,
       count(*) FILTER (WHERE kind = 'motion') AS motion_events,
       count(*) FILTER (WHERE kind = 'switch') AS switch_events
FROM sensor_data
GROUP BY 1, 2
WITH NO DATA;

SELECT add_continuous_aggregate_policy('sensor_data_1h',
    start_offset => interval '3 days', end_offset => interval '1 hour', schedule_interval => interval '15 minutes');
SELECT add_retention_policy('sensor_data_1m', drop_after => interval '365 days');

-- Fleet-wide range queries read these covering indexes alone (as on the other editions' rollup tables).
CREATE INDEX sensor_data_1m_bucket_idx ON sensor_data_1m (bucket, device_id)
    INCLUDE (temperature_avg, temperature_min, temperature_max, humidity_avg, pressure_avg);
CREATE INDEX sensor_data_1h_bucket_idx ON sensor_data_1h (bucket, device_id)
    INCLUDE (temperature_avg, temperature_min, temperature_max, humidity_avg, pressure_avg);

-- The policies refresh the aggregates; the ingest's call is a no-op here.
CREATE FUNCTION iots6_refresh_rollups(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
