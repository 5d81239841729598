#!/usr/bin/env bash
# bert_qa under valgrind memcheck: a short run that reads the bundled SQuAD subsets,
# tokenizes, trains a small BERT for a few steps in bf16 with a checkpoint, evaluates,
# and writes every output file. Exits non-zero on any memcheck error.
#
#   scripts/valgrind.sh [BUILD_DIR]      default: build (configured Release by the README)
#
# Valgrind 3.19 (Debian 12) emulates no AVX-512: its CPUID hides it, so mpt's dispatch
# picks the AVX2 kernels on its own, which are what memcheck then checks (the AVX-512 and
# AMX paths run under AddressSanitizer in CI instead). Needs: apt-get install valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
command -v valgrind > /dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ -f "$build_dir/build.ninja" ] || cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build_dir" --target bert_qa

out=$(mktemp -d /tmp/mpt-valgrind.XXXXXX)
trap 'rm -rf "$out"' EXIT
squad=tests/fixtures/squad-v1.1-dev-subset.json
started=$(date +%s)
# --error-exitcode: any memcheck error fails the run; --errors-for-leak-kinds=definite:
# a definite leak is an error too (TBB's and the C++ runtime's still-reachable pools are not).
MPT_NUM_THREADS=2 valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --track-origins=yes --log-file="$out/memcheck.log" \
  "$build_dir/bin/bert_qa" \
  --config_overrides hidden_size=64,num_hidden_layers=1,num_attention_heads=2,intermediate_size=128 \
  --train_file "$squad" --validation_file "$squad" --do_train --do_eval --bf16 \
  --max_seq_length 128 --doc_stride 32 --max_train_samples 32 --max_eval_samples 16 --max_steps 3 \
  --per_device_train_batch_size 8 --per_device_eval_batch_size 8 --save_steps 2 --disable_tqdm \
  --output_dir "$out/run" > "$out/bert_qa.log" 2>&1 || status=$?
status=${status:-0}
summary=$(grep -E "ERROR SUMMARY|definitely lost|in use at exit" "$out/memcheck.log" | sed 's/^==[0-9]*== //')
echo "valgrind.sh: bert_qa under memcheck exited $status in $(( $(date +%s) - started )) s"
echo "$summary"
grep -E "^bert_qa: EM|train_runtime|eval_exact_match" "$out/bert_qa.log" | head -3 || true
ls "$out/run" | tr '\n' ' '
echo
if [ "$status" -ne 0 ]; then
  tail -40 "$out/bert_qa.log"
  grep -B2 -A30 -m3 "Invalid\|uninitialised\|definitely lost" "$out/memcheck.log" | head -120
  exit 1
fi
