-- The newest reading of each device, one row per device (every edition), so "now" views read N rows whatever
-- the retention: the fleet view (`iotctl device fleet`), the dashboards' current-value panels, `iotctl tail`'s
-- initial state.  Reading it the old way (newest row of sensor_data per device) costs one index probe per device
-- and partition or chunk, so it grew with the retention (docs/benchmarks.md).
--
-- The ingest maintains it in the transaction that stores the readings (services/iots6_platform/ingest/store.py,
-- UPSERT_LATEST_READING): one set-based upsert per batch from the batch's newest reading per device.  "Newest"
-- is the order of sensor_data's key, (time, kind, seq): a row is only ever replaced by a strictly greater one, so
-- an out-of-order or redelivered reading never moves it backwards and a redelivery changes nothing.
--
-- Rows written around the ingest (a restore, a bulk COPY) are caught up with iots6_refresh_latest_reading().
-- A row outlives its readings' retention, like devices.last_seen: the last thing a silent device said stays known.

CREATE TABLE latest_reading (
    device_id    text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    time         timestamptz NOT NULL,
    kind         text NOT NULL,
    seq          bigint NOT NULL,
    temperature  double precision,        -- degrees Celsius
    humidity     double precision,        -- %RH
    pressure     double precision,        -- hPa
    motion       boolean,
    switch       boolean,
    rssi         smallint,                -- dBm
    uptime_s     integer,
    fw           text,
    received_at  timestamptz NOT NULL,
    dropped      integer
);

COMMENT ON TABLE latest_reading IS
    'The newest stored reading of each device (by time, kind, seq), kept by the ingest in the same transaction.';

-- Catch up with sensor_data: each device's newest reading, where it is newer than the row here (or there is none).
-- One backward index scan per device over the (device_id, time, kind, seq) key; returns the rows changed.
CREATE FUNCTION iots6_refresh_latest_reading() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    INSERT INTO latest_reading AS l (device_id, time, kind, seq, temperature, humidity, pressure, motion, switch,
                                     rssi, uptime_s, fw, received_at, dropped)
    SELECT d.device_id, s.time, s.kind, s.seq, s.temperature, s.humidity, s.pressure, s.motion, s.switch,
           s.rssi, s.uptime_s, s.fw, s.received_at, s.dropped
    FROM devices AS d
    CROSS JOIN LATERAL (
        SELECT * FROM sensor_data AS r WHERE r.device_id = d.device_id
        ORDER BY r.time DESC, r.kind DESC, r.seq DESC LIMIT 1
    ) AS s
    ORDER BY d.device_id
    ON CONFLICT (device_id) DO UPDATE SET
        time = EXCLUDED.time, kind = EXCLUDED.kind, seq = EXCLUDED.seq, temperature = EXCLUDED.temperature,
        humidity = EXCLUDED.humidity, pressure = EXCLUDED.pressure, motion = EXCLUDED.motion,
        switch = EXCLUDED.switch, rssi = EXCLUDED.rssi, uptime_s = EXCLUDED.uptime_s, fw = EXCLUDED.fw,
        received_at = EXCLUDED.received_at, dropped = EXCLUDED.dropped
    WHERE (EXCLUDED.time, EXCLUDED.kind, EXCLUDED.seq) > (l.time, l.kind, l.seq);
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END $$;

SELECT iots6_refresh_latest_reading();
