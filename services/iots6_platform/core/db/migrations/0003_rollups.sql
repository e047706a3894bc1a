-- Rollups on plain PostgreSQL and TimescaleDB Apache edition: tables maintained incrementally by iots6_refresh_rollups(from, to),
-- which the ingest service calls for the time range it has just written (the equivalent of continuous
-- aggregates).  Same names and columns as the TimescaleDB continuous aggregates, so dashboards do not care.

CREATE TABLE sensor_data_1m (
    bucket           timestamptz NOT NULL,
    device_id        text NOT NULL,
    samples          bigint NOT NULL,
    temperature_avg  double precision,
    temperature_min  double precision,
    temperature_max  double precision,
    humidity_avg     double precision,
    pressure_avg     double precision,
    motion_events    bigint NOT NULL,
    switch_events    bigint NOT NULL,
    PRIMARY KEY (device_id, bucket)
);
-- Fleet-wide range queries ("every device, last 30 days, hourly") read this index alone: ordered by time, then
-- device, and covering the values dashboards plot (an index-only scan, no sort).
CREATE INDEX sensor_data_1m_bucket_idx ON sensor_data_1m (bucket, device_id)
    INCLUDE (temperature_avg, temperature_min, temperature_max, humidity_avg, pressure_avg);

CREATE TABLE sensor_data_1h (LIKE sensor_data_1m INCLUDING ALL);

CREATE FUNCTION iots6_refresh_rollups(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lo_m timestamptz := date_bin('1 minute', p_from, timestamptz '2000-01-01 00:00:00+00');
    lo_h timestamptz := date_bin('1 hour', p_from, timestamptz '2000-01-01 00:00:00+00');
    n    integer;
BEGIN
    INSERT INTO sensor_data_1m AS r
    SELECT date_bin('1 minute', time, timestamptz '2000-01-01 00:00:00+00'), device_id, count(*),
           avg(temperature), min(temperature), max(temperature), avg(humidity), avg(pressure),
           count(*) FILTER (WHERE kind = 'motion'), count(*) FILTER (WHERE kind = 'switch')
    FROM sensor_data WHERE time >= lo_m AND time < p_to
    GROUP BY 1, 2
    ON CONFLICT (device_id, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, temperature_avg = EXCLUDED.temperature_avg,
        temperature_min = EXCLUDED.temperature_min, temperature_max = EXCLUDED.temperature_max,
        humidity_avg = EXCLUDED.humidity_avg, pressure_avg = EXCLUDED.pressure_avg,
        motion_events = EXCLUDED.motion_events, switch_events = EXCLUDED.switch_events;
    GET DIAGNOSTICS n = ROW_COUNT;

    -- Hours are computed from the raw readings, not from the minutes: an average of minute averages weighted by
    -- `samples` would count motion/switch events that carry no temperature.
    INSERT INTO sensor_data_1h AS r
    SELECT date_bin('1 hour', time, timestamptz '2000-01-01 00:00:00+00'), device_id, count(*),
           avg(temperature), min(temperature), max(temperature), avg(humidity), avg(pressure),
           count(*) FILTER (WHERE kind = 'motion'), count(*) FILTER (WHERE kind = 'switch')
    FROM sensor_data WHERE time >= lo_h AND time < date_bin('1 hour', p_to, timestamptz '2000-01-01 00:00:00+00')
                                                   + interval '1 hour'
    GROUP BY 1, 2
    ON CONFLICT (device_id, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, temperature_avg = EXCLUDED.temperature_avg,
        temperature_min = EXCLUDED.temperature_min, temperature_max = EXCLUDED.temperature_max,
        humidity_avg = EXCLUDED.humidity_avg, pressure_avg = EXCLUDED.pressure_avg,
        motion_events = EXCLUDED.motion_events, switch_events = EXCLUDED.switch_events;
    RETURN n;
END $$;
