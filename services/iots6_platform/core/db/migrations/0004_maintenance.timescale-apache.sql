-- Maintenance on TimescaleDB Apache edition: retention by drop_chunks (an Apache-licensed function) instead of
-- the licensed retention policy.  The ingest service calls iots6_maintain() at start and every few minutes.

CREATE FUNCTION iots6_maintain() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    raw_keep interval := (SELECT value::interval FROM iots6_settings WHERE key = 'raw_retention');
    m_keep   interval := (SELECT value::interval FROM iots6_settings WHERE key = 'rollup_1m_retention');
    dropped  integer;
BEGIN
    SELECT count(*) INTO dropped FROM drop_chunks('sensor_data', older_than => now() - raw_keep);
    DELETE FROM sensor_data_1m WHERE bucket < now() - m_keep;
    RETURN jsonb_build_object('chunks_dropped', dropped);
END $$;
