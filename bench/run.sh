#!/usr/bin/env bash
# bnetl benchmarks: medians over repeated runs, with DuckDB as the peer in the same run.
# Needs: a release build (cargo build --release), hyperfine, wrk, GNU time (apt-get install
# hyperfine wrk time), python3 with duckdb (pip install duckdb).
# usage: bench/run.sh [EVENTS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${RUNS:-5}
BIN=$PWD/target/release/bnetl
WORK=${BENCH_DIR:-/tmp/bnetl-bench}
mkdir -p "$WORK"
EVENTS=$WORK/events-$N.jsonl
[ -f "$EVENTS" ] || python3 bench/gen_events.py "$N" "$EVENTS"
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $N events, $(du -h "$EVENTS" | cut -f1)"

export BNETL_QUIET=1
D=$WORK/data
bq() { "$BIN" --data-dir "$D" "$@"; }

echo "== produce $N lines into the embedded log"
hyperfine -r "$RUNS" -N --export-json "$WORK/produce.json" \
  --prepare "rm -rf $D" "$BIN --data-dir $D produce $EVENTS" | grep -E "Time|Range"

echo "== pipeline: extract + transform + filtered-writes + the seed's 3 queries (bnetl) vs DuckDB from JSON"
cat > "$WORK/pipeline.sh" <<SH
set -e
B="$BIN --data-dir $D"
\$B extract; \$B transform; \$B filtered-writes
\$B sql "SELECT COUNT(*) FROM extracted_events" >/dev/null
\$B sql "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC" >/dev/null
\$B sql "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC" >/dev/null
SH
hyperfine -r "$RUNS" --export-json "$WORK/pipeline.json" \
  -n bnetl "bash $WORK/pipeline.sh" \
  -n duckdb "python3 bench/duckdb_pipeline.py $EVENTS $WORK/duckdb-out" | grep -E "Time|Range|±|faster|bnetl|duckdb"

echo "== each job alone"
hyperfine -r "$RUNS" -N "$BIN --data-dir $D extract" "$BIN --data-dir $D transform" "$BIN --data-dir $D filtered-writes" | grep -E "Benchmark|Time"

echo "== sql COUNT(*) latency"
hyperfine -r 20 -N -w 3 "$BIN --data-dir $D sql 'SELECT COUNT(*) FROM extracted_events'" | grep -E "Time|Range"

echo "== peak RSS of extract (GNU time)"
for n in 100000 "$N"; do
  E=$WORK/events-$n.jsonl; [ -f "$E" ] || python3 bench/gen_events.py "$n" "$E"
  rm -rf "$WORK/rss"; "$BIN" --data-dir "$WORK/rss" produce "$E"
  /usr/bin/time -f "extract of $n events: %M KiB peak RSS, %e s" "$BIN" --data-dir "$WORK/rss" extract
done

echo "== demo"
hyperfine -r "$RUNS" -N "$BIN --data-dir $WORK/demo-data demo" | grep -E "Time|Range"

echo "== serve: wrk -c 50 -d 10s on /purchase_a_sword, then count the events"
rm -rf "$WORK/serve"
"$BIN" --data-dir "$WORK/serve" serve --addr 127.0.0.1:5055 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:5055/ && break; sleep 0.05; done
wrk -t 2 -c 50 -d 10s http://127.0.0.1:5055/purchase_a_sword | tee "$WORK/wrk.txt" | grep -E "Requests/sec|requests in|Non-2xx|Socket errors"
kill -TERM $SERVER; wait $SERVER
"$BIN" --data-dir "$WORK/serve" extract
echo "events in the log (the / readiness probe included): $("$BIN" --data-dir "$WORK/serve" sql --format csv 'SELECT COUNT(*) AS n FROM extracted_events' | tail -1)"
