-- Maintenance on plain PostgreSQL: daily partitions created ahead, old ones dropped (retention), old 1-minute
-- rollups deleted.  The ingest service calls iots6_maintain() at start and every few minutes.

CREATE FUNCTION iots6_maintain() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    created  integer;
    dropped  integer;
    raw_keep interval := (SELECT value::interval FROM iots6_settings WHERE key = 'raw_retention');
    m_keep   interval := (SELECT value::interval FROM iots6_settings WHERE key = 'rollup_1m_retention');
BEGIN
    created := iots6_ensure_partitions(now() - interval '1 day', now() + interval '7 days');
    dropped := iots6_drop_partitions(raw_keep);
    DELETE FROM sensor_data_1m WHERE bucket < now() - m_keep;
    RETURN jsonb_build_object('partitions_created', created, 'partitions_dropped', dropped);
END $$;
