-- sensor_data on TimescaleDB (Timescale License): a hypertable with compression and retention policies.
-- The unique key makes a redelivered message harmless (INSERT ... ON CONFLICT DO NOTHING).

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

ALTER TABLE sensor_data SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'time DESC, kind, seq'
);
SELECT add_compression_policy('sensor_data', compress_after => interval '7 days');
SELECT add_retention_policy('sensor_data', drop_after => interval '90 days');

-- Kept for parity with the other editions: chunks are created by TimescaleDB itself.
CREATE FUNCTION iots6_ensure_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
