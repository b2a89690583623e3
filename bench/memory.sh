#!/usr/bin/env bash
# Peak memory of extract where memory used to grow with the topic (issue: "memory stays
# bounded whatever the topic holds"), on the embedded log and a local warehouse:
#   1. a topic of BAD messages of 1 KiB that are not JSON (100% malformed): all go to
#      _bad_records, streamed through a temp file, not held in memory;
#   2. EVENTS events over HOSTS distinct hosts, written with --partition-by Host: at most
#      --max-open-files files open, the rest sorted by partition (spilling past 128 MiB).
# Reports wall time and peak RSS (GNU time) of each, and the files written. Target: < 300 MB.
# usage: bench/memory.sh   (BAD=10000000 EVENTS=1000000 HOSTS=100000; needs ~12 GB in BENCH_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release/bnetl
WORK=${BENCH_DIR:-/tmp/bnetl-bench}/memory
BAD=${BAD:-10000000}
EVENTS=${EVENTS:-1000000}
HOSTS=${HOSTS:-100000}
rm -rf "$WORK"; mkdir -p "$WORK"
peak() { /usr/bin/time -f "%e s, peak RSS %M KiB" "$@" 2>&1 >/dev/null | tail -1; }

echo "== $BAD malformed messages of 1 KiB"
python3 -c "
import sys
line = b'not json ' + b'x' * 1014 + b'\n'
chunk = line * 10000
for _ in range($BAD // 10000): sys.stdout.buffer.write(chunk)
" | /usr/bin/time -f "   produce: %e s" "$BIN" -q --data-dir "$WORK/bad" produce -
echo "   extract: $(peak "$BIN" -q --data-dir "$WORK/bad" extract)"
echo "   _bad_records rows: $("$BIN" -q --data-dir "$WORK/bad" sql --format csv 'SELECT COUNT(*) FROM _bad_records' | tail -1)"
rm -rf "$WORK/bad"

echo "== $EVENTS events over $HOSTS hosts, --partition-by Host"
python3 -c "
import json, random, sys
random.seed(1)
out = sys.stdout
for i in range($EVENTS):
    out.write(json.dumps({'event_type': 'purchase_sword', 'Host': 'user%d.comcast.com' % random.randrange($HOSTS), 'Accept': '*/*', 'User-Agent': 'ApacheBench/2.3'}) + '\n')
" | "$BIN" -q --data-dir "$WORK/hosts" produce -
echo "   extract: $(peak "$BIN" -q --data-dir "$WORK/hosts" extract --partition-by Host)"
echo "   files: $(find "$WORK/hosts/warehouse/extracted_events" -name '*.parquet' | wc -l) for $(find "$WORK/hosts/warehouse/extracted_events" -mindepth 1 -maxdepth 1 -type d -name 'Host=*' | wc -l) hosts"
rm -rf "$WORK/hosts"
