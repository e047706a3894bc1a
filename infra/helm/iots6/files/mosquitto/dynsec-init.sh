#!/bin/sh
# Init container of the broker pod: create the dynamic security plugin's state file on the broker's first start,
# holding only the plugin's admin client `admin` (password: Key Vault `mqtt-admin-password`).
#
# Later starts keep the file untouched: from then on the broker owns it, and clients, roles and ACLs change live
# over $CONTROL/dynamic-security/v1 (the dynsec-seed sidecar for the service clients, `iotctl device provision`
# for devices), never by rewriting files.
#
# Runs in the Mosquitto image (POSIX sh, mosquitto_ctrl). The password reaches mosquitto_ctrl on stdin, never on a
# command line. Environment:
#   IOTS6_DYNSEC_FILE   the state file, on the broker's persistent volume
#   IOTS6_SECRETS_DIR   the mounted Secret with the file `admin-password`
set -eu

file="${IOTS6_DYNSEC_FILE:?set IOTS6_DYNSEC_FILE}"
secrets="${IOTS6_SECRETS_DIR:?set IOTS6_SECRETS_DIR}"

if [ -s "$file" ]; then
  echo "dynsec-init: $file exists; keeping the broker's own state"
  exit 0
fi
if [ ! -r "$secrets/admin-password" ]; then
  echo "dynsec-init: $secrets/admin-password is missing; check the ExternalSecret for mqtt-admin-password" >&2
  exit 1
fi
password="$(cat "$secrets/admin-password")"
if [ -z "$password" ]; then
  echo "dynsec-init: $secrets/admin-password is empty; set the Key Vault secret mqtt-admin-password" >&2
  exit 1
fi

umask 077
tmp="$file.init.$$"
rm -f "$tmp"
# mosquitto_ctrl asks for the new password twice on stdin.
if ! printf '%s\n%s\n' "$password" "$password" | mosquitto_ctrl dynsec init "$tmp" admin >/dev/null; then
  rm -f "$tmp"
  echo "dynsec-init: mosquitto_ctrl could not create $tmp" >&2
  exit 1
fi
mv "$tmp" "$file"
echo "dynsec-init: created $file with the admin client"
