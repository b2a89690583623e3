#!/usr/bin/env bash
# `bnetl run` from a real Apache Kafka 4 node (testinfra/bin/kafka-node): the seed's three
# outputs written to a local warehouse in one read of a 4-partition topic, against a plain
# consumer reading the same topic to /dev/null (kcat), medians in one hyperfine run.
# Needs: a release build, hyperfine, kcat, Java 17 + Maven (mvn -f testinfra/pom.xml package).
# usage: bench/kafka_run.sh [EVENTS]   (default 1000000; RUNS=5)
source "$(dirname "$0")/common.sh"
KAFKA_CP="$PWD/testinfra/target/kafka-lib/*"
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
S=$WORK/kafka-run; rm -rf "$S"; mkdir -p "$S"
KP=$(port); BR=127.0.0.1:$KP
testinfra/bin/kafka-node --dir "$S/kafka" --port "$KP" --controller-port "$(port)" >"$S/kafka.log" 2>&1 &
KAFKA=$!
trap 'kill $KAFKA 2>/dev/null; wait $KAFKA 2>/dev/null || true' EXIT
until kcat -L -b "$BR" -m 1 2>/dev/null | grep -q " 1 brokers"; do sleep 0.1; done
java -cp "$KAFKA_CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BR" --create \
  --topic events --partitions 4 --replication-factor 1 >/dev/null 2>&1
/usr/bin/time -f "== produce $N events to Kafka at $BR (4 partitions): %e s" "$BIN" -q --brokers "$BR" --data-dir "$S/d" produce "$EVENTS"
echo "== bnetl run (3 outputs, local warehouse) vs kcat reading the topic to /dev/null"
hf kafka-run -r "$RUNS" -w 1 \
  -n "bnetl run" "$BIN -q --brokers $BR --data-dir $S/d run" \
  -n kcat "kcat -C -b $BR -t events -o beginning -e -q -X fetch.wait.max.ms=10 > /dev/null"
echo "   extracted_events rows: $("$BIN" -q --data-dir "$S/d" sql --format csv 'SELECT COUNT(*) AS n FROM extracted_events' | tail -1)"
/usr/bin/time -f "   bnetl run: %M KiB peak RSS, %e s" "$BIN" -q --brokers "$BR" --data-dir "$S/d" run
