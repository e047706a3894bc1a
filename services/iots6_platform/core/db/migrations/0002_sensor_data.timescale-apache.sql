-- sensor_data on TimescaleDB Apache edition (what Azure Database for PostgreSQL offers): a hypertable;
-- compression, retention policies and continuous aggregates are Timescale-License features and are not used.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE sensor_data (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    kind         text NOT NULL DEFAULT 'telemetry' CHECK (kind IN ('telemetry', 'motion', 'switch')),
    seq          bigint NOT NULL,
    temperature  double precision,        -- degrees Celsius
    humidity     double precision,        -- %RH
    pressure     double precision,        -- hPa
    motion       boolean,
    switch       boolean,
    rssi         smallint,                -- dBm
    uptime_s     integer,
    fw           text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sensor_data_reading_key UNIQUE (device_id, time, kind, seq)
);

SELECT create_hypertable('sensor_data', 'time', chunk_time_interval => interval '1 day');

CREATE FUNCTION iots6_ensure_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
