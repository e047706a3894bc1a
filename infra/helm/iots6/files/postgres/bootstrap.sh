#!/bin/sh
# Init container of the migration Job: connect as the server's administrator and make sure the application role,
# Grafana's read-only role and the database exist, with the passwords Key Vault holds now (files/postgres/
# bootstrap.sql does the work; run again, it changes nothing but the passwords). The admin password reaches libpq
# through a 0600 passfile, never an environment value or a command line. Environment: PGHOST, PGPORT, PGUSER
# (the administrator), PGSSLMODE, IOTS6_SECRETS_DIR (admin-password, app-password, grafana-password),
# IOTS6_DB_NAME, IOTS6_APP_USER, IOTS6_GRAFANA_USER, IOTS6_SQL (path of bootstrap.sql), IOTS6_TMP (scratch).
set -eu

secrets="${IOTS6_SECRETS_DIR:?set IOTS6_SECRETS_DIR}"
scratch="${IOTS6_TMP:-/tmp}"
umask 077
for name in admin-password app-password grafana-password; do
  if [ ! -s "$secrets/$name" ]; then
    echo "db-bootstrap: $secrets/$name is missing or empty; check the ExternalSecret of the postgres-* secrets" >&2
    exit 1
  fi
done

# libpq passfile: backslash and colon are escaped.
password="$(cat "$secrets/admin-password")"
escaped="$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')"
printf '*:*:*:*:%s\n' "$escaped" > "$scratch/pgpass"
export PGPASSFILE="$scratch/pgpass"
trap 'rm -f "$scratch/pgpass"' EXIT

tries=0
until pg_isready -q -d postgres; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "db-bootstrap: $PGHOST:${PGPORT:-5432} does not answer after 2 minutes; check database.host and the NetworkPolicy egress" >&2
    exit 1
  fi
  sleep 2
done

psql -X -q -v ON_ERROR_STOP=1 -d postgres \
  -v db_name="$IOTS6_DB_NAME" -v app_user="$IOTS6_APP_USER" -v grafana_user="$IOTS6_GRAFANA_USER" \
  -f "${IOTS6_SQL:?set IOTS6_SQL}"
echo "db-bootstrap: roles $IOTS6_APP_USER, $IOTS6_GRAFANA_USER and database $IOTS6_DB_NAME are in place"
