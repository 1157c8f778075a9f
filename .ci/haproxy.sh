#!/usr/bin/env bash
# Installs HAProxy from Debian when it is missing (CI runs as root on a fresh machine).
# The balancer tests start their own haproxy processes in the foreground on free
# loopback ports (server-app/tests/common/haproxy.rs); nothing is started here and
# Debian's haproxy service, if the package starts one, is left alone.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "haproxy is missing and there is no apt-get: install HAProxy 2.x" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq haproxy >/dev/null
# The package's own service is not needed by the tests and holds no port they use,
# but a fresh CI machine has no reason to run it.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
haproxy -v | head -1
