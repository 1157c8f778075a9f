#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks, from Debian's `postgresql`.
#
#   .ci/postgres.sh install               installs Debian's postgresql if missing (root)
#   .ci/postgres.sh start [--owner PID] [--no-fsync] [--tls]
#                                         initdb into a new temporary folder, starts the
#                                         server on a free loopback port, prints
#                                         URL=postgres://postgres@127.0.0.1:PORT/postgres
#                                         and DIR=<folder>; with --owner, the cluster is
#                                         stopped and removed once process PID has exited.
#                                         With --tls: a throwaway CA and a certificate for
#                                         127.0.0.1 and localhost (openssl), ssl=on, and
#                                         TCP connections without TLS refused (hostssl
#                                         only); also prints CA=<the CA's certificate>
#   .ci/postgres.sh ca DIR                writes a throwaway CA into DIR (ca.crt, ca.key)
#   .ci/postgres.sh stop DIR              stops the cluster in DIR and removes DIR
#
# The cluster listens on 127.0.0.1 only, trusts local connections (it holds test data
# only), and runs as the `postgres` user when started by root (initdb refuses root).
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd_install() {
  if bindir >/dev/null; then return 0; fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no apt-get: install PostgreSQL's server (initdb, pg_ctl)"
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed: run this as root to apt-get install postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  # Debian creates and may start a default cluster: tests use throwaway ones only.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _port status _rest; do
      if [ "$status" = online ]; then pg_ctlcluster "$ver" "$name" stop || true; fi
    done
  fi
  bindir >/dev/null || die "installed postgresql, but found no initdb/pg_ctl under /usr/lib/postgresql"
}

# A throwaway CA in $1: ca.crt and ca.key (EC P-256, valid for two days).
make_ca() {
  command -v openssl >/dev/null 2>&1 || die "--tls needs the openssl command: apt-get install openssl"
  mkdir -p "$1"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=throwaway test CA $(basename "$1")" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$1/ca.key" -out "$1/ca.crt" >/dev/null 2>&1 || die "openssl could not make a CA in $1"
}

# A CA and a server certificate for 127.0.0.1 and localhost in $1 (server.crt, server.key).
make_server_cert() {
  local d=$1
  make_ca "$d"
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >"$d/server.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 \
    || die "openssl could not make the server's key"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" >/dev/null 2>&1 \
    || die "openssl could not sign the server's certificate"
  # The CA's key is not needed any more; PostgreSQL wants its own key private.
  rm -f "$d/ca.key" "$d/server.csr" "$d/server.ext" "$d/ca.srl"
  chmod 0600 "$d/server.key"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
  local owner="" fsync=on tls=false
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner) owner="${2:?--owner needs a pid}"; shift 2 ;;
      --no-fsync) fsync=off; shift ;;
      --tls) tls=true; shift ;;
      *) die "unknown option: $1" ;;
    esac
  done
  local bin
  bin=$(bindir) || die "PostgreSQL is not installed (no initdb/pg_ctl): run '.ci/postgres.sh install' as root, or apt-get install postgresql"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the cluster as (initdb refuses root): reinstall the postgresql package"
  fi
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pgcluster.XXXXXX")
  chmod 0755 "$dir"
  mkdir "$dir/data" "$dir/socket"
  local ssl_options=""
  if $tls; then
    make_server_cert "$dir/tls" || { rm -rf "$dir"; exit 1; }
    ssl_options="-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
  fi
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; fi
  if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"
  fi
  if $tls; then
    # TCP with TLS only: a connection without it finds no pg_hba.conf entry.
    printf '%s\n' "local all all trust" "hostssl all all 127.0.0.1/32 trust" \
      | as_owner tee "$dir/data/pg_hba.conf" >/dev/null
  fi
  local port="" attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    local p=$(( 20000 + RANDOM % 40000 ))
    if port_busy "$p"; then continue; fi
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $p -c unix_socket_directories=$dir/socket -c fsync=$fsync -c max_connections=200 $ssl_options" \
        >/dev/null 2>&1; then
      port=$p; break
    fi
  done
  if [ -z "$port" ]; then
    tail -20 "$dir/server.log" >&2 || true
    rm -rf "$dir"; die "could not start the cluster on a free port"
  fi
  if [ -n "$owner" ]; then
    # A watchdog, detached from our output, stops the cluster when the owner exits.
    nohup bash -c '
      while kill -0 "$1" 2>/dev/null; do sleep 1; done
      exec "$2" stop "$3"' watchdog "$owner" "$(realpath "$0")" "$dir" \
      >/dev/null 2>&1 </dev/null &
  fi
  echo "URL=postgres://postgres@127.0.0.1:$port/postgres"
  echo "DIR=$dir"
  if $tls; then echo "CA=$dir/tls/ca.crt"; fi
}

cmd_stop() {
  local dir="${1:?usage: postgres.sh stop DIR}"
  [ -d "$dir/data" ] || die "$dir holds no cluster"
  local bin
  bin=$(bindir) || die "PostgreSQL is not installed"
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  ca) shift; make_ca "${1:?usage: postgres.sh ca DIR}" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: postgres.sh install | start [--owner PID] [--no-fsync] [--tls] | ca DIR | stop DIR" ;;
esac
