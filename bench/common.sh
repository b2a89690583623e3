# Shared by bench/run.sh and bench/kafka.sh: settings, the event file, and `hf`, which runs
# hyperfine and prints medians (bench/medians.py).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${RUNS:-5}
BIN=$PWD/target/release/bnetl
WORK=${BENCH_DIR:-/tmp/bnetl-bench}
mkdir -p "$WORK"
EVENTS=$WORK/events-$N.jsonl
[ -f "$EVENTS" ] || python3 bench/gen_events.py "$N" "$EVENTS"
hf() { local name=$1; shift; hyperfine --style none --export-json "$WORK/$name.json" "$@" >/dev/null; python3 bench/medians.py "$WORK/$name.json"; }
export BNETL_QUIET=1
