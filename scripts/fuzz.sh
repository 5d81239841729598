#!/usr/bin/env bash
# Fuzzes mpt's parsers with libFuzzer (the targets are in tests/fuzz/).
#
#   scripts/fuzz.sh TARGET SECONDS   build fuzz_TARGET and fuzz it for SECONDS
#   scripts/fuzz.sh all SECONDS      every target, one after the other (SECONDS each)
#   scripts/fuzz.sh list             the target names
#
# Builds build-fuzz/ with clang++ (-fsanitize=fuzzer,address,undefined, -O1, asserts on),
# then runs each target in one process on a scratch copy of tests/fuzz/corpus/TARGET/
# with its dictionary, -timeout=10 -rss_limit_mb=2048 and leak detection, and prints one
# line per target: executions, exec/s, coverage (cov = edges, ft = features). Exits
# non-zero if any target crashed, leaked, hung, ran out of memory or tripped a sanitizer;
# the reproducer is in build-fuzz/fuzz-work/TARGET/ (its log next to it). Commit it as
# tests/fuzz/regressions/TARGET/<what-it-is> once the library is fixed: test_fuzz_corpus
# replays it in every build from then on.
#
# Environment: MPT_FUZZ_BUILD_JOBS (ninja -j, default 1), MPT_FUZZ_JOBS (targets fuzzed at
# once, one core each, default 1), MPT_FUZZ_BUILD_DIR (default build-fuzz).
set -euo pipefail

cd "$(dirname "$0")/.."
build_dir=${MPT_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${MPT_FUZZ_BUILD_JOBS:-1}
parallel=${MPT_FUZZ_JOBS:-1}
fuzz_dir=tests/fuzz

usage() {
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS   (or: scripts/fuzz.sh list)" >&2
  exit 2
}

# The targets: every tests/fuzz/fuzz_<name>.cpp.
all_targets=()
for f in "$fuzz_dir"/fuzz_*.cpp; do
  name=$(basename "$f" .cpp)
  all_targets+=("${name#fuzz_}")
done

[ $# -ge 1 ] || usage
if [ "$1" = list ]; then
  printf '%s\n' "${all_targets[@]}"
  exit 0
fi
[ $# -eq 2 ] || usage
seconds=$2
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "fuzz.sh: SECONDS must be a positive integer, not '$seconds'" >&2; exit 2; }
if [ "$1" = all ]; then
  targets=("${all_targets[@]}")
else
  [ -f "$fuzz_dir/fuzz_$1.cpp" ] || { echo "fuzz.sh: no target '$1' (known: ${all_targets[*]})" >&2; exit 2; }
  targets=("$1")
fi

# ---- tools: the build dependencies, then clang++ with libFuzzer ------------
scripts/install-deps.sh --fuzz
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; on Debian 12: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe_dir/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe_dir/probe.cpp" -o "$probe_dir/probe" 2>"$probe_dir/err"; then
  cat "$probe_dir/err" >&2
  echo "fuzz.sh: clang++ cannot link libFuzzer; on Debian 12: apt-get install libclang-rt-14-dev (clang-14's runtime libraries)" >&2
  exit 1
fi

# ---- build --------------------------------------------------------------------
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DMPT_BUILD_FUZZERS=ON -DMPT_BUILD_TESTS=ON -DMPT_BUILD_EXAMPLES=OFF -DMPT_BUILD_BENCH=OFF -DMPT_ENABLE_MPI=OFF >"$build_dir.configure.log" 2>&1 ||
  { cat "$build_dir.configure.log" >&2; exit 1; }
mv "$build_dir.configure.log" "$build_dir/configure.log"
ninja -C "$build_dir" -j "$jobs" "${targets[@]/#/fuzz_}"

# ---- run: MPT_FUZZ_JOBS targets at a time, one process (one core) each ----------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Fuzzes one target; its summary line goes to $work/summary.txt, and "failed" next to it.
fuzz_one() {
  local name=$1 work="$build_dir/fuzz-work/$1"
  rm -rf "$work"
  mkdir -p "$work/corpus"
  cp "$fuzz_dir/corpus/$name"/* "$work/corpus/"
  local dict="$fuzz_dir/$name.dict"
  [ -f "$dict" ] || dict="$fuzz_dir/${name%_jsonl}.dict"  # squad_jsonl shares squad's keys
  local dict_flag=()
  [ -f "$dict" ] && dict_flag=(-dict="$dict")
  echo "fuzz.sh: fuzz_$name for $seconds s (log: $work/log.txt)"
  local status=0
  "$build_dir/bin/fuzz_$name" "$work/corpus" "${dict_flag[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$work/" >"$work/log.txt" 2>&1 || status=$?
  local runs rate cov ft units line
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log.txt" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log.txt" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$work/log.txt" | tail -1 | cut -d' ' -f2)
  units=$(find "$work/corpus" -type f | wc -l)
  line=$(printf '%-16s %11s executions %8s exec/s  cov %5s  ft %6s  corpus %5s  %5s s' "$name" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$units" "$seconds")
  if [ "$status" -ne 0 ]; then
    local artifact
    artifact=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) | head -1)
    line+="  FAILED (exit $status) ${artifact:-see $work/log.txt}"
    touch "$work/failed"
    grep -m1 -A12 -E '^==[0-9]+==ERROR|runtime error|uncaught exception|deadly signal|ALARM|out-of-memory' "$work/log.txt" >&2 || tail -20 "$work/log.txt" >&2
  else
    line+="  ok"
  fi
  echo "$line" | tee "$work/summary.txt"
}
for name in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_one "$name" &
done
wait
failed=()
summary=()
for name in "${targets[@]}"; do
  summary+=("$(cat "$build_dir/fuzz-work/$name/summary.txt" 2>/dev/null || echo "$name: no summary (the run was interrupted)")")
  [ -f "$build_dir/fuzz-work/$name/failed" ] || [ ! -f "$build_dir/fuzz-work/$name/summary.txt" ] && failed+=("$name")
done

echo "fuzz.sh: summary ($(date +%F), $seconds s per target)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
