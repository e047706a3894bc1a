-- Core tables shared by every edition: the device registry and the dead-letter store.

CREATE TABLE devices (
    device_id   text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz,             -- time of the newest stored reading
    fw          text,                    -- firmware version last reported
    rssi        smallint,                -- Wi-Fi RSSI last reported, dBm
    status      text CHECK (status IN ('online', 'offline')),
    status_at   timestamptz,             -- when the retained status last changed
    labels      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- name, location/site, ...
    retired_at  timestamptz              -- set when the device is decommissioned
);

COMMENT ON TABLE devices IS 'Provisioned devices. Readings from ids not listed here are dead-lettered.';

CREATE TABLE dead_letter (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    payload      bytea NOT NULL,          -- the raw payload exactly as received
    reason       text NOT NULL,           -- short code: not_json, bad_type, impossible_value, ...
    detail       text NOT NULL,           -- one sentence: what was wrong
    device_id    text                     -- from the topic, when it had one
);

CREATE INDEX dead_letter_received_at_idx ON dead_letter (received_at DESC);
CREATE INDEX dead_letter_device_idx ON dead_letter (device_id, received_at DESC);

COMMENT ON TABLE dead_letter IS 'Messages that broke the contract, with the reason; never retried automatically.';

-- Settings the maintenance functions read (retention), editable by operators.
CREATE TABLE iots6_settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO iots6_settings (key, value) VALUES
    ('raw_retention', '90 days'),
    ('rollup_1m_retention', '365 days');
