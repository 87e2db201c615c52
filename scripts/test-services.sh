#!/usr/bin/env bash
# Make the services the test suite uses available, where this machine can have them:
# - PostgreSQL: start an installed-but-stopped cluster with pg_ctlcluster.
# - Chromium (for the browser tests): Debian's package, installed when we are root.
# Where neither exists, the tests that need them are skipped with a visible notice
# (under CI=true PostgreSQL tests fail instead of skipping).
set -u

if command -v pg_lsclusters >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r ver cluster port status _rest; do
    if [ "$status" != "online" ]; then
      echo "test-services: starting PostgreSQL $ver/$cluster on port $port"
      pg_ctlcluster "$ver" "$cluster" start || echo "test-services: could not start $ver/$cluster"
    fi
  done
else
  echo "test-services: NOTICE no PostgreSQL installed here; PostgreSQL tests will be skipped"
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-services: installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "test-services: NOTICE could not install chromium; browser tests will be skipped"
  else
    echo "test-services: NOTICE /usr/bin/chromium missing; browser tests will be skipped"
  fi
fi
exit 0
