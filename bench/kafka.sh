#!/usr/bin/env bash
# Kafka benchmarks on librdkafka's mock broker (`bnetl mock-kafka`): produce, extract vs kcat
# consuming the same topic, and serve on Kafka under wrk. Medians; kcat is the peer in the same
# run. Needs a release build, hyperfine, wrk, kcat (apt-get install kcat), python3.
# usage: bench/kafka.sh [EVENTS]  (default 1000000: fits the mock's 5 MiB per partition
# because bnetl produce compresses with lz4)
source "$(dirname "$0")/common.sh"

"$BIN" mock-kafka --partitions 4 > "$WORK/mock.out" 2>/dev/null &
MOCK=$!
trap 'kill $MOCK 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/mock.out" ] && break; sleep 0.05; done
BR=$(head -1 "$WORK/mock.out")
D=$WORK/kafka-data
rm -rf "$D"

echo "== Kafka (mock broker at $BR, 4 partitions): produce $N lines"
/usr/bin/time -f "  produce: %e s wall, %M KiB peak RSS" "$BIN" --brokers "$BR" --data-dir "$D" produce "$EVENTS"

echo "== extract vs kcat -C -e -X fetch.wait.max.ms=10 consuming the same topic to /dev/null"
hf kafka-extract -r "$RUNS" -w 1 \
  -n kcat "kcat -C -b $BR -t events -o beginning -e -q -X fetch.wait.max.ms=10 > /dev/null" \
  -n "bnetl extract" "$BIN --brokers $BR --data-dir $D extract"
/usr/bin/time -f "  bnetl extract: %M KiB peak RSS" "$BIN" --brokers "$BR" --data-dir "$D" extract

high() { kcat -C -b "$BR" -t events -o -1 -e -q -f '%o\n' | awk '{s += $1 + 1} END {print s}'; }
echo "== serve --brokers: wrk -c 50 -d 10s on /purchase_a_sword"
before=$(high)
"$BIN" --brokers "$BR" --data-dir "$D" serve --addr 127.0.0.1:5056 2>"$WORK/serve-kafka.log" &
SERVER=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:5056/ && break; sleep 0.05; done
wrk -t 2 -c 50 -d 10s http://127.0.0.1:5056/purchase_a_sword | tee "$WORK/wrk-kafka.txt" | grep -E "Requests/sec|requests in|Non-2xx|Socket errors" | sed 's/^/  /'
kill -TERM $SERVER; wait $SERVER
echo "  offsets added to the topic (the / readiness probe included): $(( $(high) - before ))"
