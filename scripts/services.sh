#!/usr/bin/env bash
# PostgreSQL and Redis on 127.0.0.1 for the tests: starts them when they are installed but
# down, installs them from Debian's packages when they are missing (then lets the postgres
# user connect from 127.0.0.1 without a password, as the tests do). Never stops anything.
# Called by scripts/test.sh (the README's test command) and .ci/run.
set -euo pipefail

as_root() {  # run as root: directly when we are, else through sudo
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

installed=0
if ! command -v pg_isready >/dev/null || ! command -v redis-server >/dev/null; then
  echo "Installing PostgreSQL and Redis from Debian's packages..."
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
  installed=1
fi
cluster=$(ls /etc/postgresql | sort -V | tail -n1)
if [ "$installed" = 1 ]; then
  # Debian's fresh cluster asks for a password on 127.0.0.1; the tests connect as postgres without one.
  hba=/etc/postgresql/$cluster/main/pg_hba.conf
  as_root grep -q "^host all all 127.0.0.1/32 trust" "$hba" ||
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main reload 2>/dev/null || true
fi

wait_for() {  # wait_for NAME COMMAND...: up to 30 s, then fail with the service named
  local name=$1; shift
  for _ in $(seq 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "$name did not come up on 127.0.0.1" >&2
  exit 1
}
if ! pg_isready -h 127.0.0.1 -q; then
  echo "Starting PostgreSQL ($cluster)..."
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
fi
wait_for PostgreSQL pg_isready -h 127.0.0.1 -q
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "Starting Redis..."
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/tests.log
fi
wait_for Redis redis-cli -h 127.0.0.1 ping
