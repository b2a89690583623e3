#!/usr/bin/env bash
# The seed's pipeline after the traffic, bnetl against DuckDB and Polars in the same hyperfine
# run: `bnetl run` (one read of the embedded log feeding extracted_events, transformed_events
# and purchases) + the seed's 3 queries (one `bnetl sql` with the three statements, as the
# seed runs them in one pyspark session and the peers in one Python process), against the
# same three outputs and queries in DuckDB and in Polars from the JSON file of the same
# events. At each size in SIZES (1M and 10M by default): medians and ratios, the same
# interleaved (with also the queries as three `bnetl sql` processes), then peak RSS (GNU
# time) of each. At the
# first size also: the three jobs (three reads) for comparison, and `bnetl sql` over the
# topic's events against DuckDB's read_json for the same GROUP BY.
# Needs: a release build, hyperfine, GNU time, python3 with duckdb and polars
# (pip install duckdb polars). usage: bench/pipeline.sh   (SIZES="1000000 10000000", RUNS=5,
# RUNS_LARGE=3 for sizes above 1M; ~8 GB in BENCH_DIR for 10M). After hyperfine, the pipeline
# runs again interleaved with its peers (bench/interleave.py; ROUNDS=11, ROUNDS_LARGE=3).
source "$(dirname "$0")/common.sh"
SIZES=${SIZES:-1000000 10000000}
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; duckdb $(python3 -c 'import duckdb; print(duckdb.__version__)'), polars $(python3 -c 'import polars; print(polars.__version__)')"
first=1
for n in $SIZES; do
  E=$WORK/events-$n.jsonl
  [ -f "$E" ] || python3 bench/gen_events.py "$n" "$E"
  D=$WORK/pipeline-$n
  rm -rf "$D"
  /usr/bin/time -f "== $n events ($(du -h "$E" | cut -f1) of JSON) produced into the embedded log in %e s" \
    "$BIN" -q --data-dir "$D" produce "$E"
  runs=$RUNS; [ "$n" -gt 1000000 ] && runs=${RUNS_LARGE:-3}
  cat > "$WORK/run-$n.sh" <<SH
set -e
B="$BIN -q --data-dir $D"
\$B run
\$B sql "SELECT COUNT(*) FROM extracted_events;
  SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC;
  SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC" >/dev/null
SH
  # The same with a `bnetl sql` process per query (the interleaved loop only).
  sed -e '/^\$B sql/,$d' "$WORK/run-$n.sh" > "$WORK/run3-$n.sh"
  for q in "SELECT COUNT(*) FROM extracted_events" \
    "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC" \
    "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC"; do
    echo "\$B sql \"$q\" >/dev/null" >> "$WORK/run3-$n.sh"
  done
  echo "== pipeline, $n events: bnetl run + the seed's 3 queries vs DuckDB vs Polars (same outputs, from JSON)"
  hf "pipeline-$n" -r "$runs" -w 1 -n "bnetl run" "bash $WORK/run-$n.sh" \
    -n duckdb "python3 bench/duckdb_pipeline.py $E $WORK/duckdb-out" \
    -n polars "python3 bench/polars_pipeline.py $E $WORK/polars-out"
  rounds=${ROUNDS:-11}; [ "$n" -gt 1000000 ] && rounds=${ROUNDS_LARGE:-3}
  echo "== the same, interleaved: one run of each in turn, $rounds rounds"
  python3 bench/interleave.py "$rounds" "bnetl=bash $WORK/run-$n.sh" \
    "bnetl-3-sql=bash $WORK/run3-$n.sh" \
    "polars=python3 bench/polars_pipeline.py $E $WORK/polars-out" \
    "duckdb=python3 bench/duckdb_pipeline.py $E $WORK/duckdb-out"
  echo "   rows: $("$BIN" -q --data-dir "$D" sql --format csv 'SELECT (SELECT COUNT(*) FROM extracted_events) AS extracted, (SELECT COUNT(*) FROM transformed_events) AS transformed, (SELECT COUNT(*) FROM purchases) AS purchases' | tail -1) (extracted, transformed, purchases)"
  echo "== peak RSS, $n events"
  /usr/bin/time -f "   bnetl run: %M KiB, %e s" "$BIN" -q --data-dir "$D" run
  /usr/bin/time -f "   duckdb:    %M KiB, %e s" python3 bench/duckdb_pipeline.py "$E" "$WORK/duckdb-out"
  /usr/bin/time -f "   polars:    %M KiB, %e s" python3 bench/polars_pipeline.py "$E" "$WORK/polars-out"
  if [ "$first" = 1 ]; then
    first=0
    cat > "$WORK/jobs-$n.sh" <<SH
set -e
B="$BIN -q --data-dir $D"
\$B extract; \$B transform; \$B filtered-writes
SH
    echo "== one read against three: bnetl run vs extract + transform + filtered-writes, $n events"
    hf "run-vs-jobs-$n" -r "$runs" -n "bnetl run" "$BIN -q --data-dir $D run" -n "3 jobs" "bash $WORK/jobs-$n.sh"
    echo "== sql over the topic, $n events: GROUP BY event_type, bnetl (embedded log) vs DuckDB (JSON file)"
    hf "sql-topic-$n" -r "$runs" -w 1 \
      -n "bnetl sql events" "$BIN -q --data-dir $D sql 'SELECT event_type, COUNT(*) AS n FROM events GROUP BY event_type ORDER BY n DESC'" \
      -n duckdb "python3 -c \"import duckdb; duckdb.sql(\\\"SELECT event_type, COUNT(*) AS n FROM read_json('$E', format='newline_delimited') GROUP BY event_type ORDER BY n DESC\\\").fetchall()\""
  fi
  rm -rf "$D"
done
