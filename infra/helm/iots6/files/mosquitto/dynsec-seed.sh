#!/bin/sh
# Sidecar of the broker pod: create the service clients and their roles in the running broker and keep their
# passwords in step with Key Vault, over $CONTROL/dynamic-security/v1 as the plugin's admin client `admin`.
#
#   role      ACL (topic base B)                         client        Key Vault secret
#   ingest    subscribe + receive  B/#                   svc.ingest    mqtt-ingest-password
#   config    publish              B/+/config            svc.config    mqtt-config-password
#   operator  subscribe + receive  B/#                   svc.operator  mqtt-operator-password
#
# Every pass sends one idempotent command list: createRole/addRoleACL/createClient (an "already exists" answer is
# fine) and modifyClient, which sets the password and the role again. A pass runs at start and whenever a mounted
# secret file changes (External Secrets refreshes the Secret, the kubelet updates the files), so a rotated password
# is live within the ExternalSecret refresh interval plus a minute, without restarting anything. A rotated admin
# password is applied with the previous one, which this sidecar remembers while it runs. Device clients are never
# touched here (`iotctl device provision` manages them live).
#
# After each good pass the sidecar writes the svc.operator login for the broker container's readiness probe, so
# the broker turns Ready only once the service clients exist.
#
# Runs in the Mosquitto image (POSIX sh, mosquitto_pub/mosquitto_sub). Passwords travel in 0600 files only
# (mosquitto client option files and the command payload), never on a command line. Environment:
#   IOTS6_SECRETS_DIR     mounted Secret: admin-password, ingest-password, config-password, operator-password
#   IOTS6_SEED_STATE_DIR  private scratch directory (an in-memory emptyDir)
#   IOTS6_PROBE_DIR       where the probe's mosquitto_sub option file goes (shared with the broker container)
#   IOTS6_TOPIC_BASE      first level of every topic
#   IOTS6_MQTT_PORT       the broker's pod-local plaintext listener (default 1883); the host is 127.0.0.1
#   IOTS6_SEED_INTERVAL_S seconds between checks for changed secrets (default 30)
#   IOTS6_SEED_ONCE       when set, run one pass and exit with its status (tests, one-off repairs)
set -eu

secrets="${IOTS6_SECRETS_DIR:?set IOTS6_SECRETS_DIR}"
state="${IOTS6_SEED_STATE_DIR:?set IOTS6_SEED_STATE_DIR}"
probe="${IOTS6_PROBE_DIR:?set IOTS6_PROBE_DIR}"
base="${IOTS6_TOPIC_BASE:?set IOTS6_TOPIC_BASE}"
host=127.0.0.1
port="${IOTS6_MQTT_PORT:-1883}"
interval="${IOTS6_SEED_INTERVAL_S:-30}"
control='$CONTROL/dynamic-security/v1'
umask 077

log() { echo "dynsec-seed: $*"; }

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

# A mosquitto_pub/mosquitto_sub option directory (XDG_CONFIG_HOME) logging in as user $2 with password file $3.
login_dir() {
  mkdir -p "$1"
  password="$(cat "$secrets/$3")"
  printf -- '-u %s\n-P %s\n' "$2" "$password" > "$1/mosquitto_sub"
  cp "$1/mosquitto_sub" "$1/mosquitto_pub"
}

# Send payload file $2 to the plugin logged in with option directory $1; print the plugin's response.
# The listener for the answer may not have subscribed yet when the first copy goes out, and the commands are
# idempotent, so the payload is sent again every second until an answer arrives (at most 10 times). The response
# topic is shared by every admin session, so check() matches the answer by its correlationData.
send() {
  out="$state/response.$$"
  rm -f "$out"
  XDG_CONFIG_HOME="$1" mosquitto_sub -h "$host" -p "$port" -t "$control/response" -C 1 -W 12 > "$out" 2>&1 &
  sub=$!
  sent=0
  while [ "$sent" -lt 10 ] && kill -0 "$sub" 2>/dev/null; do
    sleep 0.2
    XDG_CONFIG_HOME="$1" mosquitto_pub -h "$host" -p "$port" -t "$control" -f "$2" 2>/dev/null || true
    sent=$((sent + 1))
    waited=0
    while [ "$waited" -lt 8 ] && kill -0 "$sub" 2>/dev/null; do
      sleep 0.1
      waited=$((waited + 1))
    done
  done
  kill "$sub" 2>/dev/null || true
  wait "$sub" 2>/dev/null || true
  grep -v '^{' "$out" | grep -i -e 'error' -e 'refused' >&2 || true
  grep '^{"responses"' "$out" || true
  rm -f "$out"
}

# Check a response ($1) to the pass tagged $2: every error must be an "already exists" one.
check() {
  case "$1" in
    *"\"correlationData\":\"$2\""*) ;;
    *)
      log "no answer from the dynamic security plugin" >&2
      return 1
      ;;
  esac
  errors="$(printf '%s\n' "$1" | grep -o '"error":"[^"]*"' \
    | grep -v -e 'Role already exists' -e 'ACL with this topic already exists' -e 'Client already exists' || true)"
  if [ -n "$errors" ]; then
    log "the plugin refused a command: $errors" >&2
    return 1
  fi
}

acl() { # role acltype topic
  printf '{"command":"addRoleACL","rolename":"%s","acltype":"%s","topic":"%s","allow":true},' "$1" "$2" "$3"
}

client() { # username role password-file
  password="$(json_secret "$3")" || return 1
  printf '{"command":"createClient","username":"%s","password":%s,"roles":[{"rolename":"%s"}]},' "$1" "$password" "$2"
  printf '{"command":"modifyClient","username":"%s","password":%s,"roles":[{"rolename":"%s"}]},' "$1" "$password" "$2"
}

commands() { # correlation tag
  printf '{"commands":['
  printf '{"command":"createRole","rolename":"ingest"},{"command":"createRole","rolename":"config"},'
  printf '{"command":"createRole","rolename":"operator"},'
  acl ingest subscribePattern "$base/#"
  acl ingest publishClientReceive "$base/#"
  acl config publishClientSend "$base/+/config"
  acl operator subscribePattern "$base/#"
  acl operator publishClientReceive "$base/#"
  client svc.ingest ingest ingest-password || return 1
  client svc.config config config-password || return 1
  client svc.operator operator operator-password || return 1
  printf '{"command":"listRoles","correlationData":"%s"}]}' "$1"
}

fingerprint() {
  cat "$secrets/admin-password" "$secrets/ingest-password" "$secrets/config-password" \
    "$secrets/operator-password" | cksum
}

seed_pass() {
  tag="seed-$$-$(date +%s)"
  payload="$state/commands.json"
  commands "$tag" > "$payload" || { rm -f "$payload"; return 1; }
  login_dir "$state/admin" admin admin-password
  response="$(send "$state/admin" "$payload")" || response=""
  if [ -z "$response" ] && [ -d "$state/admin-applied" ]; then
    # The admin password changed in Key Vault: set it with the previous one, then go on with the new one.
    log "admin login refused; applying the rotated admin password with the previous one"
    printf '{"commands":[{"command":"setClientPassword","username":"admin","password":%s,"correlationData":"%s"}]}' \
      "$(json_secret admin-password)" "$tag" > "$state/admin.json"
    # The plugin disconnects every `admin` session (this listener too) as it changes that password, so no
    # answer comes back; the pass below, logged in with the new password, is the proof.
    send "$state/admin-applied" "$state/admin.json" > /dev/null 2>&1 || true
    rm -f "$state/admin.json"
    sleep 1
    response="$(send "$state/admin" "$payload")" || response=""
  fi
  rm -f "$payload"
  check "$response" "$tag" || return 1
  rm -rf "$state/admin-applied"
  cp -r "$state/admin" "$state/admin-applied"
  # The readiness probe's login (mosquitto_sub reads $XDG_CONFIG_HOME/mosquitto_sub).
  mkdir -p "$probe"
  password="$(cat "$secrets/operator-password")"
  printf -- '-u svc.operator\n-P %s\n' "$password" > "$probe/mosquitto_sub.new"
  chmod 600 "$probe/mosquitto_sub.new"
  mv "$probe/mosquitto_sub.new" "$probe/mosquitto_sub"
  log "service clients svc.ingest, svc.config, svc.operator are in step with their secrets"
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
