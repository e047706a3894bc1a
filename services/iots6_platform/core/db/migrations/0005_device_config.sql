-- Device configuration served by the config server (every edition): fleet defaults, per-device overrides, the
-- history of every change, and the hashed bearer tokens devices use to fetch their own configuration.
--
-- Both documents are sparse: they hold only the keys an operator set.  The effective configuration of a device is
-- built-in defaults (services/iots6_platform/core/devconfig/schema.py) < fleet_config.config < device_config.overrides, and its version is
-- fleet_config.version + device_config.version, which grows with every change to either.

CREATE TABLE fleet_config (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),  -- exactly one row
    config      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config) = 'object'),
    version     integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);
INSERT INTO fleet_config DEFAULT VALUES;

COMMENT ON TABLE fleet_config IS 'Fleet-wide configuration defaults (one JSON document, versioned).';

CREATE TABLE device_config (
    device_id   text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    overrides   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(overrides) = 'object'),
    version     integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);

COMMENT ON TABLE device_config IS 'Per-device configuration overrides; a missing row means no overrides, version 0.';

CREATE TABLE config_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text REFERENCES devices (device_id) ON DELETE CASCADE,  -- NULL: the fleet defaults
    version     integer NOT NULL,           -- version of the changed document after the change
    actor       text NOT NULL,              -- who (X-Actor header of the admin request)
    changed_at  timestamptz NOT NULL DEFAULT now(),
    change      jsonb NOT NULL              -- {"dotted.key": {"old": ..., "new": ...}}, null = absent
);

CREATE INDEX config_history_device_idx ON config_history (device_id, id DESC);

COMMENT ON TABLE config_history IS 'Every configuration change: who, when, what changed, resulting version.';

CREATE TABLE device_tokens (
    device_id   text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),  -- sha256 of a 256-bit random token
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);

COMMENT ON TABLE device_tokens IS 'Config-server bearer tokens of devices, stored as SHA-256 (tokens are random).';
