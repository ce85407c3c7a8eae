#!/usr/bin/env bash
# make bench: landexplorer against its peers, on the same data, in the same run.
#
#   bash bench/run.sh                        # everything (long: tens of minutes on 2 cores)
#   BENCH_QUICK=1 bash bench/run.sh          # smoke run: 1 round, small sizes
#   BENCH_ONLY="ingest join" bash bench/run.sh   # only bench/bench_ingest.py and bench_join.py
#   BENCH_ONLY=encoders BENCH_SKIP_SETUP=1 bash bench/run.sh  # PNG/MVT encoders: no peers needed
#   BENCH_ONLY=access BENCH_SKIP_SETUP=1 bash bench/run.sh  # signed-in (50 groups) vs anonymous reads
#   BENCH_ONLY=instances bash bench/run.sh   # items and cached tiles, 1 vs 2 serve instances
#     on one PostGIS (bench_instances.py; docs/deploy.md); BENCH_QUICK=1 is a smoke run that
#     writes $BENCH_DATA/work/instances-smoke.json, not bench/results/instances.json
#   BENCH_ONLY=load BENCH_LOAD_DURATION=5 bash bench/run.sh   # smoke run of the load benchmark
#     (bench_load.py: 50 clients alone, then with the attack battery; a run shorter than
#     60 s writes $BENCH_DATA/work/load-smoke.json, not bench/results/load.json)
#
# Steps:
#  1. the shared peer harness prepares its environment and data (idempotent, skips what exists):
#     ../shared/bench/setup_env.sh (Debian GDAL, PostGIS, /tmp/bench-venv) and make_data.py
#     (/tmp/bench-data). A lock file keeps two engineers' runs from preparing at the same time.
#  2. the throw-away PostGIS cluster of the peer harness is started and loaded (and stopped at
#     the end only if this run started it), for the benchmarks whose peers need it.
#  3. every bench/bench_<name>.py runs with the project venv; each writes bench/results/<name>.json.
#     A failing benchmark is reported and the others still run.
#  4. bench/report.py renders every bench/results/*.json into docs/benchmarks.md.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SHARED=${BENCH_SHARED:-$ROOT/../shared/bench}
[ -d "$SHARED" ] || SHARED=/work/shared/bench
SHARED=$(cd "$SHARED" && pwd)
export BENCH_SHARED=$SHARED
export BENCH_DATA=${BENCH_DATA:-/tmp/bench-data}
export BENCH_VENV=${BENCH_VENV:-/tmp/bench-venv}
PY=${BENCH_PYTHON:-$ROOT/.venv/bin/python}
LOCK=${BENCH_LOCK:-/tmp/landexplorer-bench-setup.lock}

say() { echo "$(date +%H:%M:%S) [bench] $*" >&2; }

# ---- 1. peer environment and workload data --------------------------------------------------
if [ "${BENCH_SKIP_SETUP:-0}" != 1 ]; then
  say "preparing the peer environment and data (lock $LOCK)"
  (
    flock 9
    "$SHARED/setup_env.sh" || exit 1
    # shellcheck disable=SC1091
    source "$BENCH_VENV/bench.env"
    "$BENCH_VENV/bin/python" "$SHARED/make_data.py" || exit 1
  ) 9>"$LOCK" || { say "peer setup failed"; exit 1; }
fi
[ -f "$BENCH_VENV/bench.env" ] && source "$BENCH_VENV/bench.env"

# ---- which benchmarks -----------------------------------------------------------------------
scripts=()
if [ -n "${BENCH_ONLY:-}" ]; then
  for name in $BENCH_ONLY; do
    name=${name#bench_}; name=${name%.py}
    if [ -f "bench/bench_$name.py" ]; then scripts+=("bench/bench_$name.py")
    else say "no bench/bench_$name.py: skipped"; fi
  done
else
  for f in bench/bench_*.py; do [ -f "$f" ] && scripts+=("$f"); done
fi
say "benchmarks: ${scripts[*]:-none}"

# ---- 2. PostGIS for the peers that need it --------------------------------------------------
started_pg=0
stop_pg() {
  if [ "$started_pg" = 1 ]; then
    say "stopping the bench PostGIS cluster this run started"
    "$SHARED/pg_cluster.sh" stop || true
  fi
}
trap stop_pg EXIT
if [ "${BENCH_PG:-1}" = 1 ] && [ ${#scripts[@]} -gt 0 ] \
   && grep -lqE "pg_cluster|PG_DSN|PG_URL|psycopg|postgresql://" "${scripts[@]}" 2>/dev/null; then
  pg_out=$("$SHARED/pg_cluster.sh" start 2>&1) || say "PostGIS start failed: $pg_out"
  echo "$pg_out" >&2
  case "$pg_out" in *"bench-pg started"*) started_pg=1 ;; esac
  ( flock 9; "$SHARED/pg_cluster.sh" load ) 9>"$LOCK.pg" >&2 || say "PostGIS load failed"
fi

# ---- 3. the benchmarks ----------------------------------------------------------------------
failed=()
for script in "${scripts[@]}"; do
  say "=== $script ==="
  if ! "$PY" "$script"; then
    failed+=("$script")
    say "FAILED: $script (the other benchmarks still run)"
  fi
done

# ---- 4. the report --------------------------------------------------------------------------
"$PY" bench/report.py || failed+=("bench/report.py")
if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "done: docs/benchmarks.md"
