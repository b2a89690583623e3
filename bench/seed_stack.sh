#!/usr/bin/env bash
# The seed's stack side by side with bnetl on the same real servers: one Apache Kafka 4 node
# and a MiniDFSCluster (testinfra/), N events of the seed's mix in a 4-partition topic. Then,
# in one hyperfine run each: the seed's three Spark jobs (Spark's Kafka source → Parquet on
# HDFS) + the seed's 3 queries against bnetl's three jobs + the same queries; and bnetl's
# extract (to a local warehouse) against plain consumers reading the topic to nowhere: kcat
# and Kafka's own kafka-consumer-perf-test (its JVM start included).
# Needs: a release build, hyperfine, kcat, Java 17 + Maven, python3 with pyspark 3.5.
# usage: bench/seed_stack.sh [EVENTS]   (default 1000000; RUNS=5, SPARK_RUNS=3)
source "$(dirname "$0")/common.sh"
SPARK_VERSION=$(python3 -c 'import pyspark; print(pyspark.__version__)')
# The Kafka source of PySpark's own version; Maven Central may lag pip by a patch release
# (3.5.9 was missing on 2026-12-04), then the newest 3.5 patch it has (SPARK_KAFKA_VERSION).
spark_jars() {  # online: offline, a missing parent POM silently drops the transitive jars
  mvn -q -B -f testinfra/pom.xml -Pspark -Dspark.version="$1" package >/dev/null 2>&1
}
KAFKA_SOURCE=${SPARK_KAFKA_VERSION:-$SPARK_VERSION}
rm -rf testinfra/target/spark-lib
spark_jars "$KAFKA_SOURCE" || { KAFKA_SOURCE=3.5.7; spark_jars "$KAFKA_SOURCE"; }
echo "== PySpark $SPARK_VERSION with spark-sql-kafka-0-10_2.12 $KAFKA_SOURCE"
JARS=$(ls "$PWD"/testinfra/target/spark-lib/*.jar | paste -sd, -)
KAFKA_CP="$PWD/testinfra/target/kafka-lib/*"
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

S=$WORK/stack; rm -rf "$S"; mkdir -p "$S"
KP=$(port); BR=127.0.0.1:$KP
testinfra/bin/kafka-node --dir "$S/kafka" --port "$KP" --controller-port "$(port)" >"$S/kafka.log" 2>&1 &
KAFKA=$!
mkfifo "$S/hdfs.in"
testinfra/bin/minidfs --base-dir "$S/hdfs" --conf-dir "$S/hdfs-conf" --datanodes 1 <"$S/hdfs.in" >"$S/hdfs.out" 2>"$S/hdfs.log" &
HDFS=$!
exec 7>"$S/hdfs.in"   # MiniDFSCluster stops when this closes
trap 'exec 7>&-; kill $KAFKA 2>/dev/null; wait $HDFS $KAFKA 2>/dev/null || true' EXIT
started=$(date +%s.%N)
until kcat -L -b "$BR" -m 1 2>/dev/null | grep -q " 1 brokers"; do sleep 0.1; done
echo "== Kafka ready after $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s"
until grep -q READY "$S/hdfs.out"; do sleep 0.1; done
HDFS_URL=$(sed -n 's/^READY //p' "$S/hdfs.out")
echo "== MiniDFSCluster ready at $HDFS_URL after $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s"
export HADOOP_CONF_DIR=$S/hdfs-conf
java -cp "$KAFKA_CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BR" --create \
  --topic events --partitions 4 --replication-factor 1 >/dev/null 2>&1
/usr/bin/time -f "== produce $N events: %e s" "$BIN" --brokers "$BR" --data-dir "$S/d" produce "$EVENTS"

cat > "$S/bnetl.sh" <<SH
set -e
B="$BIN --brokers $BR --data-dir $S/d --warehouse $HDFS_URL/bnetl"
\$B extract; \$B transform; \$B filtered-writes
\$B sql "SELECT COUNT(*) FROM extracted_events" >/dev/null
\$B sql "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC" >/dev/null
\$B sql "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC" >/dev/null
SH
echo "== the seed's 3 jobs + 3 queries, Kafka → Parquet on HDFS: bnetl vs PySpark $SPARK_VERSION"
# Once each first: a warm-up, and the check that both wrote every event.
bash "$S/bnetl.sh"
echo "   bnetl: extracted_events rows: $("$BIN" --data-dir "$S/d" --warehouse "$HDFS_URL/bnetl" sql --format csv 'SELECT COUNT(*) AS n FROM extracted_events' | tail -1)"
python3 bench/spark_kafka_pipeline.py "$BR" events "$HDFS_URL" "$JARS" 2>&1 | grep -E "spark: |Error|error:" | sed 's/^/   /'
hf stack -r "${SPARK_RUNS:-3}" -n bnetl "bash $S/bnetl.sh" \
  -n spark "python3 bench/spark_kafka_pipeline.py $BR events $HDFS_URL $JARS"

echo "== reading the topic: bnetl extract (local warehouse) vs plain consumers to /dev/null"
hf stack-read -r "$RUNS" -w 1 \
  -n kcat "kcat -C -b $BR -t events -o beginning -e -q -X fetch.wait.max.ms=10 > /dev/null" \
  -n kafka-consumer-perf-test "java -cp '$KAFKA_CP' org.apache.kafka.tools.ConsumerPerformance --bootstrap-server $BR --topic events --messages $N > /dev/null" \
  -n "bnetl extract" "$BIN --brokers $BR --data-dir $S/local extract"
/usr/bin/time -f "   bnetl extract: %M KiB peak RSS" "$BIN" --brokers "$BR" --data-dir "$S/local" extract 2>&1 | tail -1
