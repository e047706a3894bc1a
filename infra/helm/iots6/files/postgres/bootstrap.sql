-- Run by files/postgres/bootstrap.sh as the server's administrator (Flexible Server's admin login, which is not a
-- superuser; `postgres` in the in-cluster database). Idempotent: every run re-applies the passwords (so a rotated
-- Key Vault secret takes effect at the next sync) and changes nothing else that exists.
-- Variables: db_name, app_user, grafana_user. Passwords are read from the mounted Secret files by psql itself.
\set app_password `cat "$IOTS6_SECRETS_DIR/app-password"`
\set grafana_password `cat "$IOTS6_SECRETS_DIR/grafana-password"`

-- The application role owns the database and runs the migrations; the ingest and the config server log in as it.
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';

-- Grafana's datasource reads, never writes.
SELECT format('CREATE ROLE %I LOGIN', :'grafana_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'grafana_user') \gexec
ALTER ROLE :"grafana_user" WITH LOGIN PASSWORD :'grafana_password';

-- A non-superuser administrator must be a member of a role to create a database it owns (and to grant on its
-- tables below).
SELECT format('GRANT %I TO %I', :'app_user', current_user)
 WHERE NOT pg_has_role(current_user, :'app_user', 'MEMBER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db_name', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db_name') \gexec

\connect :"db_name"
-- TimescaleDB where the server offers it (Flexible Server: allow-listed in azure.extensions and preloaded; the
-- in-cluster image: always). Only an administrator may create it there; the migrations then find it installed
-- and pick their edition (services/iots6_platform/core/db/migrate.py).
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
 WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
   AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' \gexec

GRANT CONNECT ON DATABASE :"db_name" TO :"grafana_user";
GRANT USAGE ON SCHEMA public TO :"grafana_user";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"grafana_user";
-- Tables and views the migrations create later (as the application role) are readable by Grafana too.
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_user" IN SCHEMA public GRANT SELECT ON TABLES TO :"grafana_user";
