-- Maintenance on TimescaleDB (Timescale License): compression, retention and rollups run as background-job
-- policies.  iots6_maintain() (called by the ingest at start and every few minutes, as in the other editions)
-- keeps the two retention policies in step with iots6_settings, which the other editions read on every run,
-- and reports the jobs.  Two ingests racing here both end with the setting (if_not_exists on the re-add).

-- The drop_after of the retention policy on `rel` (a hypertable or continuous aggregate), NULL if it has none.
-- Older TimescaleDB releases list a continuous aggregate's jobs under its materialization hypertable's name.
CREATE FUNCTION iots6_retention_of(rel name) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT (j.config ->> 'drop_after')::interval
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'policy_retention'
      AND (j.hypertable_name = rel OR j.hypertable_name IN (
          SELECT c.materialization_hypertable_name FROM timescaledb_information.continuous_aggregates c
          WHERE c.view_name = rel))
    LIMIT 1
$$;

CREATE FUNCTION iots6_maintain() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    raw_keep interval := (SELECT value::interval FROM iots6_settings WHERE key = 'raw_retention');
    m_keep   interval := (SELECT value::interval FROM iots6_settings WHERE key = 'rollup_1m_retention');
    updated  integer := 0;
    jobs     integer;
BEGIN
    IF raw_keep IS NOT NULL AND raw_keep IS DISTINCT FROM iots6_retention_of('sensor_data') THEN
        PERFORM remove_retention_policy('sensor_data', if_exists => true);
        PERFORM add_retention_policy('sensor_data', drop_after => raw_keep, if_not_exists => true);
        updated := updated + 1;
    END IF;
    IF m_keep IS NOT NULL AND m_keep IS DISTINCT FROM iots6_retention_of('sensor_data_1m') THEN
        PERFORM remove_retention_policy('sensor_data_1m', if_exists => true);
        PERFORM add_retention_policy('sensor_data_1m', drop_after => m_keep, if_not_exists => true);
        updated := updated + 1;
    END IF;
    SELECT count(*) INTO jobs FROM timescaledb_information.jobs j
    WHERE j.hypertable_name IN ('sensor_data', 'sensor_data_1m', 'sensor_data_1h')
       OR j.hypertable_name IN (
           SELECT c.materialization_hypertable_name FROM timescaledb_information.continuous_aggregates c
           WHERE c.view_name IN ('sensor_data_1m', 'sensor_data_1h'));
    RETURN jsonb_build_object('jobs', jobs, 'retention_policies_updated', updated);
END $$;
