#!/usr/bin/env bash
# Runs the threaded suites under ThreadSanitizer at 2 threads: the kernels (GEMM,
# element-wise), the layers and the model (test_nn), the optimizers and the Trainer's
# loop (test_optim, test_train's resume tests).
#
#   scripts/tsan.sh [SUITE...]      default: test_gemm test_elementwise test_nn test_optim
#
# Builds build-tsan/ (Debug -O1, -fsanitize=thread, -Werror) and runs each suite with
# MPT_NUM_THREADS=2 and halt_on_error, so the first report fails the script. Debian's
# oneTBB is not instrumented, so under TSan mpt::parallel_for runs its tasks on
# std::threads (core/threads.hpp): every access TSan checks is mpt's own.
#
# Environment: MPT_TSAN_BUILD_DIR (default build-tsan), MPT_TSAN_JOBS (ninja -j, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${MPT_TSAN_BUILD_DIR:-build-tsan}
jobs=${MPT_TSAN_JOBS:-2}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(test_gemm test_elementwise test_nn test_optim)

mkdir -p "$build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMPT_WERROR=ON -DMPT_ENABLE_MPI=OFF \
  -DMPT_BUILD_BENCH=OFF -DMPT_BUILD_EXAMPLES=OFF -DMPT_PRECOMPILE_HEADERS=OFF \
  -DCMAKE_CXX_FLAGS="-O1 -fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" > "$build_dir/configure.log"
cmake --build "$build_dir" -j "$jobs" --target "${suites[@]}"

status=0
for suite in "${suites[@]}"; do
  started=$(date +%s)
  if (cd tests && MPT_NUM_THREADS=2 \
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/../scripts/tsan.supp" \
      "../$build_dir/bin/$suite" > "../$build_dir/$suite.log" 2>&1); then
    echo "tsan.sh: $suite clean ($(( $(date +%s) - started )) s)"
  else
    echo "tsan.sh: $suite FAILED (see $build_dir/$suite.log)"
    grep -m1 -A20 "WARNING: ThreadSanitizer" "$build_dir/$suite.log" || tail -20 "$build_dir/$suite.log"
    status=1
  fi
done
exit $status
