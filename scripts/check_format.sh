#!/usr/bin/env bash
# The C++ sources follow .clang-format (clang-format 14, Debian 12's).
#
#   scripts/check_format.sh          check every tracked .hpp / .cpp (the generated
#                                    single header aside); lists the files that differ
#   scripts/check_format.sh --fix    rewrite them in place
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check_format.sh: clang-format is not installed (scripts/install-deps.sh --format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' | grep -v '^single_include/')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'check_format.sh: not formatted as .clang-format says (fix: scripts/check_format.sh --fix):\n' >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check_format.sh: ${#files[@]} files follow .clang-format ($(clang-format --version | grep -o 'version [0-9.]*'))"
