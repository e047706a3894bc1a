-- What the ingest could not keep of a reading, and what the device itself lost (every edition).
--
-- rejected_field: a value of a reading that broke the contract (out of range, wrong type, the older firmware's
-- double-converted pressure; docs/contract.md).  The ingest stores the reading with that column NULL and records
-- the field here, keyed like the reading, so a redelivered message records nothing twice.  Kept as long as raw
-- readings (`raw_retention`): iots6_maintain() deletes older rows.
--
-- sensor_data.dropped / devices.dropped_total: devices count the readings they drop (full offline buffer) and
-- send the count with their next message (`dropped`); each stored reading keeps it, the registry sums it.

CREATE TABLE rejected_field (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    device_id    text NOT NULL,
    time         timestamptz NOT NULL,   -- the reading's (device_id, time, kind, seq) in sensor_data
    kind         text NOT NULL,
    seq          bigint NOT NULL,
    field        text NOT NULL,          -- the sensor_data column stored as NULL
    raw_value    text NOT NULL,          -- the value as the device sent it, JSON text (at most 200 characters)
    reason       text NOT NULL,          -- impossible_value, bad_type, double_converted
    detail       text NOT NULL,          -- one sentence: what was wrong
    topic        text NOT NULL,
    CONSTRAINT rejected_field_key UNIQUE (device_id, time, kind, seq, field)
);

CREATE INDEX rejected_field_time_idx ON rejected_field (time DESC);

COMMENT ON TABLE rejected_field IS
    'Values set to NULL in an otherwise stored reading because they broke the contract, with the reason.';

ALTER TABLE sensor_data ADD COLUMN dropped integer;  -- readings the device dropped before this one, as it reported
-- Drops are rare: the fleet dashboard's "Readings dropped" panel reads them from this small index, not a scan.
CREATE INDEX sensor_data_dropped_idx ON sensor_data (time DESC) WHERE dropped > 0;

ALTER TABLE devices
    ADD COLUMN dropped_total bigint NOT NULL DEFAULT 0,  -- sum of `dropped` over the device's stored readings
    ADD COLUMN dropped_at    timestamptz;                -- time of the newest reading that reported drops

-- iots6_maintain() as each edition defines it (0004), plus the retention of rejected_field.
ALTER FUNCTION iots6_maintain() RENAME TO iots6_maintain_readings;

CREATE FUNCTION iots6_maintain() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    raw_keep interval := (SELECT value::interval FROM iots6_settings WHERE key = 'raw_retention');
    deleted  integer := 0;
BEGIN
    IF raw_keep IS NOT NULL THEN
        DELETE FROM rejected_field WHERE time < now() - raw_keep;
        GET DIAGNOSTICS deleted = ROW_COUNT;
    END IF;
    RETURN iots6_maintain_readings() || jsonb_build_object('rejected_fields_deleted', deleted);
END $$;
