#!/usr/bin/env bash
# The team-server tests (tests/team) start a real PostgreSQL 15 of their own. Its server programs
# come from Debian's packages when the machine lacks them (as root, with apt-get; no cluster is
# created or started by the package: the tests run their own on a loopback port). Without them,
# and where they cannot be installed, those tests are skipped, saying what to install.
set -u
if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "PostgreSQL's server programs are missing: tests/team will be skipped (apt-get install postgresql-15)" >&2
  exit 0
fi
mkdir -p /etc/postgresql-common
[ -e /etc/postgresql-common/createcluster.conf ] \
  || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
echo "installing PostgreSQL 15's server programs from Debian's packages for tests/team" >&2
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql-15 >/dev/null; } || echo "could not install postgresql-15: tests/team will be skipped" >&2
exit 0
