#!/usr/bin/env bash
# Makes the ledger fixture of this directory with the paybridged, terminal-sim and cloud-sim
# built from the working tree (BIN, default .build/debug), as a charger would leave it after a
# power cut: session 1 charged and captured, session 2 declined, session 3 killed (SIGKILL)
# while charging, with the outbox messages each caused. Run from the repository's root:
#   Tests/Fixtures/ledger-v1/generate.sh
# The committed fixture was made by commit 5d9004c (entry format 1, as every release before
# issue 12 wrote it). Do not regenerate it with a later format: its point is to be what an
# earlier release wrote.
set -euo pipefail
BIN=${BIN:-.build/debug}
OUT=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$D"' EXIT
mkfifo "$D/cloud-stdin"
sleep 600 > "$D/cloud-stdin" &
"$BIN/cloud-sim" --port 0 --record "$D/cloud.jsonl" --exit-with-stdin < "$D/cloud-stdin" > "$D/cloud.out" &
for _ in $(seq 1 100); do grep -q ':' "$D/cloud.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(head -1 "$D/cloud.out" | awk -F: '{print $NF}')
"$BIN/terminal-sim" --pty --link "$D/tty" --family p6x --tap-delay 50 --auth-delay 50 \
    --session "approve card=4761739001010119 hash=A1A1A1A1A1A1A1A1" \
    --session "decline reason=5 card=5413330089010434 hash=B2B2B2B2B2B2B2B2" \
    --session "approve card=374245455400126 hash=C3C3C3C3C3C3C3C3" \
    --fallback nocard --record "$D/sim.jsonl" > "$D/sim.out" 2>&1 &
sleep 1
"$BIN/paybridged" --terminal "serial:$D/tty" --family p6x --connectors 2 --state "$D/state" \
    --tariff EUR,100,40000,0 --cloud "http://127.0.0.1:$PORT" --station FIXTURE-1 \
    --charger-io simulated --sim-ev plug=100,charge=2000,power=3600000 --log-level info 2> "$D/daemon.log" &
P=$!
for _ in $(seq 1 400); do grep -q '"committed"' "$D/sim.jsonl" 2>/dev/null && break; sleep 0.05; done
sleep 0.1
kill -9 $P
# The segment up to its last whole record (the rest is preallocated zeros).
python3 - "$D/state/ledger" "$OUT" <<'PY'
import struct, sys, glob, os
src, out = sys.argv[1], sys.argv[2]
for p in sorted(glob.glob(src + '/seg-*.log')):
    b = open(p, 'rb').read()
    off, prev = 32, None
    while off + 20 <= len(b):
        ln, kind, flags, seq, crc = struct.unpack_from('<IHHQI', b, off)
        if seq == 0 or (prev is not None and seq != prev + 1) or ln > 65536: break
        prev, off = seq, off + 20 + ln
    open(os.path.join(out, os.path.basename(p)), 'wb').write(b[:off])
    print(os.path.basename(p), off, 'bytes, last sequence', prev)
PY
cp "$D/sim.jsonl" "$OUT/terminal-sim.jsonl"
cp "$D/daemon.log" "$OUT/daemon.log"
