#!/usr/bin/env bash
# Installs the Debian packages mpt needs to build, test and benchmark.
# Idempotent: packages already present are skipped, and `apt-get update`
# runs only when something is missing. Run as root (or through sudo).
#
#   scripts/install-deps.sh           # build + test dependencies
#   scripts/install-deps.sh --mpi     # also Open MPI (optional data-parallel support)
#   scripts/install-deps.sh --torch   # also python3-torch (fixture generators in tools/, bench/torch_reference.py)
#                                     # with OpenBLAS for its fp32 (Debian otherwise links the slow netlib BLAS) and jemalloc
#   scripts/install-deps.sh --format  # also clang-format (scripts/check_format.sh)
#   scripts/install-deps.sh --fuzz    # also clang and its libFuzzer runtime (scripts/fuzz.sh)
#   scripts/install-deps.sh --bench-references
#                                     # also OpenBLAS and oneDNN, which bench_gemm then
#                                     # measures in the same run (never linked into mpt)
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libeigen3-dev        # Eigen 3.4: bf16 scalar, reference GEMM
  xtl-dev libxsimd-dev # xsimd (its CMake package needs xtl)
  libtbb-dev           # oneTBB
  doctest-dev          # tests
  libcli11-dev         # command lines of the example programs (bert_qa)
  nlohmann-json3-dev   # JSON
  libutf8proc-dev      # Unicode for the tokenizer
  unzip                # the bundled SQuAD dev set is a zip
  python3              # tools/amalgamate.py (single header)
)
for arg in "$@"; do
  case "$arg" in
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    --torch) packages+=(python3-torch python3-numpy libopenblas0-pthread libjemalloc2) ;;
    --format) packages+=(clang-format) ;;
    --fuzz) packages+=(clang libclang-rt-dev) ;;
    --bench-references) packages+=(libopenblas-dev libdnnl-dev) ;;
    *) echo "install-deps.sh: unknown option '$arg' (known: --mpi, --torch, --format, --fuzz, --bench-references)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" 2>/dev/null; then
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
