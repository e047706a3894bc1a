-- sensor_data on plain PostgreSQL: native range partitioning by day on `time`.
-- The unique key makes a redelivered message harmless (INSERT ... ON CONFLICT DO NOTHING).

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
) PARTITION BY RANGE (time);

-- Rows outside every daily partition land here until iots6_ensure_partitions moves them.
CREATE TABLE sensor_data_default PARTITION OF sensor_data DEFAULT;

-- Create the daily partitions covering [p_from, p_to], moving any rows the default partition holds for them.
CREATE FUNCTION iots6_ensure_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day      date := (p_from AT TIME ZONE 'UTC')::date;
    last_day date := (p_to AT TIME ZONE 'UTC')::date;
    lo       timestamptz;
    hi       timestamptz;
    part     text;
    created  integer := 0;
BEGIN
    WHILE day <= last_day LOOP
        part := format('sensor_data_p%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(part) IS NULL THEN
            lo := (day::timestamp AT TIME ZONE 'UTC');
            hi := ((day + 1)::timestamp AT TIME ZONE 'UTC');
            EXECUTE format('CREATE TABLE %I (LIKE sensor_data INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format('WITH moved AS (DELETE FROM sensor_data_default WHERE time >= %L AND time < %L RETURNING *)'
                           ' INSERT INTO %I SELECT * FROM moved', lo, hi, part);
            EXECUTE format('ALTER TABLE sensor_data ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END $$;

-- Drop daily partitions wholly older than `older_than`.
CREATE FUNCTION iots6_drop_partitions(older_than interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r        record;
    cutoff   date := ((now() - older_than) AT TIME ZONE 'UTC')::date;
    dropped  integer := 0;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'sensor_data'::regclass AND c.relname ~ '^sensor_data_p[0-9]{8}$'
    LOOP
        IF to_date(substr(r.relname, 14), 'YYYYMMDD') < cutoff THEN
            EXECUTE format('DROP TABLE %I', r.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

SELECT iots6_ensure_partitions(now() - interval '7 days', now() + interval '7 days');
