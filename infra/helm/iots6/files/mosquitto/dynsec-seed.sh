#!/bin/sh
# Sidecar of the broker pod: keep the platform's identities in the running broker exactly as the platform defines
# them, over $CONTROL/dynamic-security/v1 as the plugin's admin client `admin`.
#
# The definition is IOTS6_DYNSEC_PLATFORM: files/mosquitto/dynsec-platform.json with the topic base B filled in by
# the chart. It is generated from iotctl/broker/dynsec.py, the definition the native and Docker stacks apply too
# (a test keeps the copy equal), so every broker of the platform holds the same:
#
#   default access  nothing is published, subscribed or delivered unless a role allows it (unsubscribe: allowed)
#   role admin      the control API, nothing else
#   svc.ingest      role svc.ingest: subscribe + receive B/#, subscribe $share/+/B/# (several workers share one
#                   subscription)                                   secret mqtt-ingest-password
#   svc.operator    role svc.operator: subscribe + receive B/#    secret mqtt-operator-password
#   svc.config      role svc.config: publish B/+/config             secret mqtt-config-password
#
# A pass:
#   1. sets the default access; creates missing roles and service clients (with their passwords); reads every
#      platform role, the roles of chart versions older than the shared definition (`ingest`, `config`,
#      `operator`) and every service client;
#   2. sends only what differs: ACLs to remove and to add (as iotctl's ensure_platform does), client roles, a
#      disabled service client, the passwords whose secret changed since the last pass (all of them on the pod's
#      first pass, while the broker is not Ready yet and no service is connected), and deletes the old roles;
#   3. reads again, and fails unless the broker now holds exactly the definition.
# The plugin disconnects the clients a change concerns (a role's ACLs, a password), so a pass changes nothing that
# is right already: a rotated password disconnects only that client. Changes to the admin role go out last and on
# their own, because the plugin disconnects the admin session that sends them before it answers.
#
# A pass runs at start and whenever a mounted secret file changes (External Secrets refreshes the Secret, the
# kubelet updates the files), so a rotated password is live within the ExternalSecret refresh interval plus a
# minute, without restarting anything. A rotated admin password is applied with the previous one, which this
# sidecar remembers while the pod lives. Device clients and their `device.<id>` roles are never touched here
# (`iotctl device provision` manages them live).
#
# After each good pass the sidecar writes the svc.operator login for the broker container's readiness probe, so
# the broker turns Ready only once the service clients exist.
#
# Runs in the Mosquitto image (BusyBox sh and applets, mosquitto_pub/mosquitto_sub). Passwords travel in 0600
# files only (mosquitto client option files and the command payloads), never on a command line. Environment:
#   IOTS6_DYNSEC_PLATFORM  the definition (JSON, one record per line)
#   IOTS6_SECRETS_DIR      mounted Secret: admin-password and <service>-password for every service client
#   IOTS6_SEED_STATE_DIR   private scratch directory (an in-memory emptyDir: it lives as long as the pod)
#   IOTS6_PROBE_DIR        where the probe's mosquitto_sub option file goes (shared with the broker container)
#   IOTS6_MQTT_PORT        the broker's pod-local plaintext listener (default 1883); the host is 127.0.0.1
#   IOTS6_SEED_INTERVAL_S  seconds between checks for changed secrets (default 30)
#   IOTS6_SEED_ONCE        when set, run one pass and exit with its status (tests, one-off repairs)
set -eu

platform="${IOTS6_DYNSEC_PLATFORM:?set IOTS6_DYNSEC_PLATFORM}"
secrets="${IOTS6_SECRETS_DIR:?set IOTS6_SECRETS_DIR}"
state="${IOTS6_SEED_STATE_DIR:?set IOTS6_SEED_STATE_DIR}"
probe="${IOTS6_PROBE_DIR:?set IOTS6_PROBE_DIR}"
host=127.0.0.1
port="${IOTS6_MQTT_PORT:-1883}"
interval="${IOTS6_SEED_INTERVAL_S:-30}"
control='$CONTROL/dynamic-security/v1'
# Roles of chart versions older than the shared definition; no device role is named like these (`device.<id>`).
legacy_roles="ingest config operator"
tab="$(printf '\t')"
umask 077

log() { echo "dynsec-seed: $*"; }

# ------------------------------------------------------------------------------------------- the definition

# The records of section $1 of the definition, one JSON object per line.
records() {
  sed -n "/^  \"$1\": \\[/,/^  \\]/p" "$platform" | grep '^    {' | sed -e 's/^ *//' -e 's/,$//' || true
}

# The string field $1 of each JSON object on stdin.
field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p"; }

# "acltype<TAB>topic<TAB>allow" of every ACL in the JSON on stdin, sorted: the definition's records and the
# plugin's getRole answers spell an ACL alike, up to spaces and the plugin's `priority`.
acls() {
  grep -o '"acltype": *"[^"]*", *"topic": *"[^"]*"[^}]*' \
    | sed "s/^\"acltype\": *\"\\([^\"]*\\)\", *\"topic\": *\"\\([^\"]*\\)\".*\"allow\": *\\([a-z]*\\).*/\\1$tab\\2$tab\\3/" \
    | sort || true
}

# "acltype<TAB>allow" of the default access in the JSON on stdin, sorted.
default_access() {
  grep -o '"acltype": *"[^"]*", *"allow": *[a-z]*' \
    | sed "s/^\"acltype\": *\"\\([^\"]*\\)\", *\"allow\": *\\([a-z]*\\)/\\1$tab\\2/" | sort || true
}

roles() { records roleACLs | field rolename | sort -u; }
clients() { records clients; }

# ------------------------------------------------------------------------------------------------- secrets

# The secret in file $1 as a JSON string; passwords with control characters are refused.
json_secret() {
  value="$(cat "$secrets/$1")"
  if [ -z "$value" ]; then
    log "$secrets/$1 is empty; set its Key Vault secret" >&2
    return 1
  fi
  case "$value" in
    *[![:print:]]*)
      log "$secrets/$1 holds a control character; generate a printable password" >&2
      return 1
      ;;
  esac
  printf '"%s"' "$(printf '%s' "$value" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

secret_sum() { sha256sum < "$secrets/$1"; }

# A mosquitto_pub/mosquitto_sub option directory (XDG_CONFIG_HOME) logging in as user $2 with password file $3.
login_dir() {
  mkdir -p "$1"
  password="$(cat "$secrets/$3")"
  printf -- '-u %s\n-P %s\n' "$2" "$password" > "$1/mosquitto_sub"
  cp "$1/mosquitto_sub" "$1/mosquitto_pub"
}

# ------------------------------------------------------------------------------------------------ transport

# Send payload file $2 to the plugin logged in with option directory $1; print the answer that carries
# correlationData $3. The listener for the answer may not have subscribed yet when the first copy goes out, and
# every batch may safely be applied twice (creates answer "already exists", a pass re-reads what it changed), so
# the payload is sent again every second until that answer arrives (at most 10 times). The response topic is shared
# by every admin session, so other answers are skipped.
send() {
  out="$state/response.$$"
  : > "$out"
  XDG_CONFIG_HOME="$1" mosquitto_sub -h "$host" -p "$port" -t "$control/response" -W 12 > "$out" 2>&1 &
  sub=$!
  sent=0
  while [ "$sent" -lt 10 ] && kill -0 "$sub" 2>/dev/null && ! grep -q -F "\"correlationData\":\"$3\"" "$out"; do
    sleep 0.2
    XDG_CONFIG_HOME="$1" mosquitto_pub -h "$host" -p "$port" -t "$control" -f "$2" 2>/dev/null || true
    sent=$((sent + 1))
    waited=0
    while [ "$waited" -lt 8 ] && kill -0 "$sub" 2>/dev/null && ! grep -q -F "\"correlationData\":\"$3\"" "$out"; do
      sleep 0.1
      waited=$((waited + 1))
    done
  done
  kill "$sub" 2>/dev/null || true
  wait "$sub" 2>/dev/null || true
  grep -v '^{' "$out" | grep -i -e 'error' -e 'refused' >&2 || true
  grep '^{"responses"' "$out" | grep -F "\"correlationData\":\"$3\"" | head -n 1 || true
  rm -f "$out"
}

# Send the commands in file $1 (comma-terminated JSON objects, one per line) as one batch tagged $2, closed by a
# read tagged `$2:end` that marks the answer; print the answer.
request() {
  payload="$state/commands.json"
  {
    printf '{"commands":['
    cat "$1"
    printf '{"command":"getDefaultACLAccess","correlationData":"%s:end"}]}' "$2"
  } > "$payload"
  send "$state/admin" "$payload" "$2:end"
  rm -f "$payload"
}

# The answers of response $1 one per line (the plugin answers a batch on one line).
answers() {
  printf '%s\n' "$1" | sed 's/{"command":"/\
&/g'
}

# The answer to the command tagged $2 in the answers $1 (empty when there is none).
answer() { printf '%s\n' "$1" | grep -F "\"correlationData\":\"$2\"" || true; }

# Is response $1 the answer to the batch tagged $2, with no error except the harmless ones named after it?
check() {
  response="$1"
  case "$response" in
    *"\"correlationData\":\"$2:end\""*) ;;
    *)
      log "no answer from the dynamic security plugin" >&2
      return 1
      ;;
  esac
  shift 2
  errors="$(printf '%s\n' "$response" | grep -o '"error":"[^"]*"' || true)"
  for harmless in "$@"; do
    errors="$(printf '%s\n' "$errors" | grep -v -F "$harmless" || true)"
  done
  if [ -n "$errors" ]; then
    log "the plugin refused a command: $errors" >&2
    return 1
  fi
}

# The lines of stdin joined by $1.
join() { tr '\n' "$1" | sed "s/$1\$//"; }

# ---------------------------------------------------------------------------------------------------- a pass

# Commands (comma-terminated JSON objects) that read what the pass compares, tagged $1.
reads() {
  printf '{"command":"getDefaultACLAccess","correlationData":"%s:default"},\n' "$1"
  for role in $(roles) $legacy_roles; do
    printf '{"command":"getRole","rolename":"%s","correlationData":"%s:role:%s"},\n' "$role" "$1" "$role"
  done
  for user in $(clients | field username); do
    printf '{"command":"getClient","username":"%s","correlationData":"%s:client:%s"},\n' "$user" "$1" "$user"
  done
}

# Step 1: the default access, missing roles and clients; then the reads. Tagged $1.
creates() {
  printf '{"command":"setDefaultACLAccess","acls":[%s]},\n' "$(records defaultACLAccess | join ,)"
  for role in $(roles); do
    printf '{"command":"createRole","rolename":"%s"},\n' "$role"
  done
  clients | while read -r record; do
    user="$(printf '%s\n' "$record" | field username)"
    role="$(printf '%s\n' "$record" | field rolename)"
    service="$(printf '%s\n' "$record" | field service)"
    password="$(json_secret "$service-password")" || exit 1
    printf '{"command":"createClient","username":"%s","password":%s,"roles":[{"rolename":"%s"}]},\n' \
      "$user" "$password" "$role"
  done || return 1
  reads "$1"
}

# Lines of file $1 that are not in file $2. (BusyBox grep reads an empty pattern file as "match everything".)
minus() {
  if [ -s "$2" ]; then
    grep -v -x -F -f "$2" "$1" || true
  else
    cat "$1"
  fi
}

# Step 2: what differs between the definition and the answers $1 to the reads tagged $2. Writes the commands to
# $state/changes and the admin role's to $state/admin-changes; with $3 = passwords, also the passwords whose
# secret changed since the last good pass.
plan() {
  all="$(answers "$1")"
  : > "$state/changes"
  : > "$state/admin-changes"
  answer "$all" "$2:default" | default_access > "$state/have"
  records defaultACLAccess | default_access > "$state/want"
  if [ "$(cat "$state/have")" != "$(cat "$state/want")" ]; then
    printf '{"command":"setDefaultACLAccess","acls":[%s]},\n' "$(records defaultACLAccess | join ,)" \
      >> "$state/changes"
  fi
  for role in $(roles); do
    target="$state/changes"
    if [ "$role" = admin ]; then
      target="$state/admin-changes"
    fi
    answer "$all" "$2:role:$role" | acls > "$state/have"
    records roleACLs | grep -F "\"rolename\": \"$role\"," | acls > "$state/want"
    if [ ! -s "$state/want" ]; then
      log "$platform defines no ACL for role $role; is it the chart's dynsec-platform.json?" >&2
      return 1
    fi
    minus "$state/have" "$state/want" | while IFS="$tab" read -r type topic _allow; do
      printf '{"command":"removeRoleACL","rolename":"%s","acltype":"%s","topic":"%s"},\n' "$role" "$type" "$topic"
    done >> "$target"
    minus "$state/want" "$state/have" | while IFS="$tab" read -r type topic allow; do
      printf '{"command":"addRoleACL","rolename":"%s","acltype":"%s","topic":"%s","allow":%s},\n' \
        "$role" "$type" "$topic" "$allow"
    done >> "$target"
  done
  clients | while read -r record; do
    user="$(printf '%s\n' "$record" | field username)"
    role="$(printf '%s\n' "$record" | field rolename)"
    service="$(printf '%s\n' "$record" | field service)"
    got="$(answer "$all" "$2:client:$user")"
    if [ -z "$got" ] || printf '%s\n' "$got" | grep -q '"error":'; then
      password="$(json_secret "$service-password")" || exit 1
      printf '{"command":"createClient","username":"%s","password":%s,"roles":[{"rolename":"%s"}]},\n' \
        "$user" "$password" "$role" >> "$state/changes"
      continue
    fi
    printf '%s\n' "$got" | grep -o '"rolename":"[^"]*"' | field rolename | sort > "$state/have"
    printf '%s\n' "$role" > "$state/want"
    minus "$state/have" "$state/want" | while read -r extra; do
      printf '{"command":"removeClientRole","username":"%s","rolename":"%s"},\n' "$user" "$extra"
    done >> "$state/changes"
    minus "$state/want" "$state/have" | while read -r missing; do
      printf '{"command":"addClientRole","username":"%s","rolename":"%s"},\n' "$user" "$missing"
    done >> "$state/changes"
    if printf '%s\n' "$got" | grep -q '"disabled":true'; then
      printf '{"command":"enableClient","username":"%s"},\n' "$user" >> "$state/changes"
    fi
    if [ "${3:-}" = passwords ] && [ "$(secret_sum "$service-password")" != "$(cat "$state/applied/$service" 2>/dev/null || true)" ]; then
      password="$(json_secret "$service-password")" || exit 1
      printf '{"command":"setClientPassword","username":"%s","password":%s},\n' "$user" "$password" >> "$state/changes"
    fi
  done || return 1
  # Legacy roles go last, once no service client holds them: Mosquitto 2.0.11 (Debian 12) corrupts a client that
  # still holds a role being deleted.
  for role in $legacy_roles; do
    if answer "$all" "$2:role:$role" | grep -q '"data":'; then
      printf '{"command":"deleteRole","rolename":"%s"},\n' "$role" >> "$state/changes"
    fi
  done
  rm -f "$state/have" "$state/want"
}

one_pass() {
  tag="seed-$$-$(date +%s)"
  login_dir "$state/admin" admin admin-password
  creates "$tag" > "$state/step1" || { rm -f "$state/step1"; return 1; }
  response="$(request "$state/step1" "$tag")"
  if [ -z "$response" ] && [ -d "$state/admin-applied" ]; then
    # The admin password changed in Key Vault: set it with the previous one, then go on with the new one.
    log "admin login refused; applying the rotated admin password with the previous one"
    printf '{"commands":[{"command":"setClientPassword","username":"admin","password":%s,"correlationData":"%s"}]}' \
      "$(json_secret admin-password)" "$tag" > "$state/admin.json"
    # The plugin disconnects every `admin` session (this listener too) as it changes that password, so no
    # answer comes back; the request below, logged in with the new password, is the proof.
    send "$state/admin-applied" "$state/admin.json" "$tag" > /dev/null 2>&1 || true
    rm -f "$state/admin.json"
    sleep 1
    response="$(request "$state/step1" "$tag")"
  fi
  rm -f "$state/step1"
  check "$response" "$tag" 'Role already exists' 'Client already exists' 'Role not found' || return 1
  rm -rf "$state/admin-applied"
  cp -r "$state/admin" "$state/admin-applied"

  plan "$response" "$tag" passwords || return 1
  if [ -s "$state/changes" ] || [ -s "$state/admin-changes" ]; then
    log "bringing $(cat "$state/changes" "$state/admin-changes" | grep -c '"command"') setting(s) in step with the definition"
    if [ -s "$state/changes" ]; then
      # Errors are logged, not fatal: a second copy of the batch answers "already exists"/"not found", and the
      # reads below decide whether the broker holds the definition.
      changed="$(request "$state/changes" "$tag-changes")"
      printf '%s\n' "$changed" | grep -o '"error":"[^"]*"' | sort -u | sed 's/^/dynsec-seed: answer: /' >&2 || true
    fi
    if [ -s "$state/admin-changes" ]; then
      # The plugin disconnects this admin session before it answers; the reads below are the proof.
      request "$state/admin-changes" "$tag-admin" > /dev/null 2>&1 || true
    fi
    reads "$tag-check" > "$state/step3"
    response="$(request "$state/step3" "$tag-check")"
    rm -f "$state/step3"
    check "$response" "$tag-check" 'Role not found' || return 1
    plan "$response" "$tag-check" || return 1
    if [ -s "$state/changes" ] || [ -s "$state/admin-changes" ]; then
      log "the broker still differs from the definition after the pass: $(cat "$state/changes" "$state/admin-changes" | sed 's/"password":.*$/"password":…/')" >&2
      return 1
    fi
  fi
  rm -f "$state/changes" "$state/admin-changes"

  mkdir -p "$state/applied"
  for service in $(clients | field service); do
    secret_sum "$service-password" > "$state/applied/$service"
  done
  # The readiness probe's login (mosquitto_sub reads $XDG_CONFIG_HOME/mosquitto_sub).
  mkdir -p "$probe"
  password="$(cat "$secrets/operator-password")"
  printf -- '-u svc.operator\n-P %s\n' "$password" > "$probe/mosquitto_sub.new"
  chmod 600 "$probe/mosquitto_sub.new"
  mv "$probe/mosquitto_sub.new" "$probe/mosquitto_sub"
  log "the broker holds the platform's roles and service clients $(clients | field username | join ' '), in step with their secrets"
}

# One pass; whatever happens, no command file (they hold passwords) outlives it.
seed_pass() {
  status=0
  one_pass || status=$?
  rm -f "$state/step1" "$state/step3" "$state/changes" "$state/admin-changes" "$state/commands.json" \
    "$state/admin.json" "$state/have" "$state/want"
  return "$status"
}

fingerprint() {
  {
    cat "$secrets/admin-password"
    for service in $(clients | field service); do
      cat "$secrets/$service-password"
    done
  } | sha256sum
}

if [ -n "${IOTS6_SEED_ONCE:-}" ]; then
  seed_pass
  exit $?
fi

trap 'exit 0' TERM INT
applied=""
while :; do
  current="$(fingerprint)" || current=""
  if [ -n "$current" ] && [ "$current" != "$applied" ]; then
    if seed_pass; then
      applied="$current"
    else
      log "pass failed; retrying in ${interval}s" >&2
    fi
  fi
  touch "$state/heartbeat" # the liveness probe checks that this loop still turns
  sleep "$interval" &
  wait $! || true
done
