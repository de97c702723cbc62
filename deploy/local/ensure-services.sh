#!/usr/bin/env bash
# Make sure the services the test suite talks to are installed and running on this machine:
# Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`), and Debian's Chromium
# for the browser tests. Each step is skipped when the thing is already there.
set -euo pipefail

have_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! have_port 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --maxmemory-policy noeviction --dir /tmp --logfile /tmp/stackyard-redis.log
  for _ in $(seq 50); do have_port 6379 && break; sleep 0.1; done
fi

if ! have_port 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$version/main
  grep -q "stackyard-trust" "$conf/pg_hba.conf" || {
    sed -i '1i host all all 127.0.0.1/32 trust # stackyard-trust\nhost all all ::1/128 trust # stackyard-trust\nlocal all all trust # stackyard-trust' "$conf/pg_hba.conf"
  }
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
  for _ in $(seq 100); do have_port 5432 && break; sleep 0.1; done
fi
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null

command -v chromium >/dev/null || apt_install chromium
echo "services ready: redis :6379, postgresql :5432, chromium $(command -v chromium)"
