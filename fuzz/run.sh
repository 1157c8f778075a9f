#!/usr/bin/env bash
# Runs one cargo-fuzz target on stable for a while, seeded from the repository's
# vectors (protocol-core/tests/vectors).
#   fuzz/run.sh TARGET [SECONDS]     (targets: decode_frames server_stream client_responses secure_frames)
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?target}
secs=${2:-60}
vectors=../protocol-core/tests/vectors
mkdir -p "corpus/$target"
# Seeds: the transcripts' client frames (for the decoder and the server) or server
# frames (for the client), one file per transcript.
python3 - "$vectors" "$target" <<'PY'
import os, sys
base, target = sys.argv[1], sys.argv[2]
want = 'S> ' if target == 'client_responses' else 'C> '
for name in ('session-register.txt', 'session-reconnect.txt'):
    data = b''.join(bytes.fromhex(l[3:].strip()) for l in open(os.path.join(base, name)) if l.startswith(want))
    open(os.path.join('corpus', target, name + '.seed'), 'wb').write(data)
PY
cargo fuzz run "$target" --sanitizer none -- -max_total_time="$secs" -print_final_stats=1
