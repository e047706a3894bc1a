#!/usr/bin/env bash
# Install the system packages iotctl's native stack and tests need, only when missing:
# Mosquitto (broker) and PostgreSQL 15+ (server binaries), plus Node.js for the MicroPython firmware tests.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# mosquitto_sub: the Docker stack's broker healthcheck is tested by running it against a real broker.
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
# The Ansible converge test boots a debootstrapped Debian 12 with systemd-nspawn (tests/infra/ansible).
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]}; install them (sudo apt-get install ${need[*]}) or use IOTCTL_ENGINE=embedded for the stack." >&2
  exit 3
fi
echo "installing ${need[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
