#!/usr/bin/env bash
# bnetl benchmarks: medians over repeated runs, with DuckDB as the peer in the same run.
# Needs: a release build (cargo build --release), hyperfine, wrk, GNU time (apt-get install
# hyperfine wrk time), python3 with duckdb (pip install duckdb).
# usage: bench/run.sh [EVENTS]   (default 1000000; RUNS=5; SPARK=1 adds PySpark as a peer)
source "$(dirname "$0")/common.sh"
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $N events, $(du -h "$EVENTS" | cut -f1)"

D=$WORK/data

echo "== produce $N lines into the embedded log"

hf produce -r "$RUNS" -N --prepare "rm -rf $D" -n produce "$BIN --data-dir $D produce $EVENTS"

echo "== pipeline: extract + transform + filtered-writes + the seed's 3 queries (bnetl) vs DuckDB from JSON"
cat > "$WORK/pipeline.sh" <<SH
set -e
B="$BIN --data-dir $D"
\$B extract; \$B transform; \$B filtered-writes
\$B sql "SELECT COUNT(*) FROM extracted_events" >/dev/null
\$B sql "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC" >/dev/null
\$B sql "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC" >/dev/null
SH
hf pipeline -r "$RUNS" -n bnetl "bash $WORK/pipeline.sh" \
  -n duckdb "python3 bench/duckdb_pipeline.py $EVENTS $WORK/duckdb-out"

if [ "${SPARK:-0}" = 1 ]; then
  echo "== the same pipeline in PySpark (local[*]), the seed's stack, vs bnetl"
  hf spark -r "${SPARK_RUNS:-3}" -n bnetl "bash $WORK/pipeline.sh" \
    -n spark "python3 bench/spark_pipeline.py $EVENTS $WORK/spark-out"
fi

echo "== each job alone"
hf jobs -r "$RUNS" -N -n extract "$BIN --data-dir $D extract" -n transform "$BIN --data-dir $D transform" \
  -n filtered-writes "$BIN --data-dir $D filtered-writes"

echo "== sql COUNT(*) latency"
hf sql -r 20 -N -w 3 -n "sql COUNT(*)" "$BIN --data-dir $D sql 'SELECT COUNT(*) FROM extracted_events'"

echo "== peak RSS of extract (GNU time)"
for n in 100000 "$N"; do
  E=$WORK/events-$n.jsonl; [ -f "$E" ] || python3 bench/gen_events.py "$n" "$E"
  rm -rf "$WORK/rss"; "$BIN" --data-dir "$WORK/rss" produce "$E"
  /usr/bin/time -f "extract of $n events: %M KiB peak RSS, %e s" "$BIN" --data-dir "$WORK/rss" extract
done

echo "== demo"
hf demo -r "$RUNS" -N -n demo "$BIN --data-dir $WORK/demo-data demo"

echo "== serve: wrk -c 50 -d 10s on /purchase_a_sword, then count the events"
rm -rf "$WORK/serve"
"$BIN" --data-dir "$WORK/serve" serve --addr 127.0.0.1:5055 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:5055/ && break; sleep 0.05; done
wrk -t 2 -c 50 -d 10s http://127.0.0.1:5055/purchase_a_sword | tee "$WORK/wrk.txt" | grep -E "Requests/sec|requests in|Non-2xx|Socket errors"
kill -TERM $SERVER; wait $SERVER
"$BIN" --data-dir "$WORK/serve" extract
echo "events in the log (the / readiness probe included): $("$BIN" --data-dir "$WORK/serve" sql --format csv 'SELECT COUNT(*) AS n FROM extracted_events' | tail -1)"

bash bench/kafka.sh "$N"
