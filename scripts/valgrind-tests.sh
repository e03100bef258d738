#!/bin/sh
# Runs every C test program under valgrind's memcheck (`make valgrind`): any invalid access,
# use of uninitialised memory or definite leak fails the run. tests/valgrind.supp holds the
# one suppression (liblzf's hash table, uninitialised by design).
set -u
build=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$build/tests" || exit 2
export H5ML_SOURCE_DIR="$src"
failed=""
for t in ./test_*; do
  [ -x "$t" ] || continue
  start=$(date +%s)
  if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
       --suppressions="$src/tests/valgrind.supp" "$t" >"$t.valgrind.log" 2>&1; then
    echo "valgrind: $t clean ($(($(date +%s) - start)) s)"
  else
    echo "valgrind: $t FAILED, see $build/tests/$t.valgrind.log" >&2
    failed="$failed $t"
  fi
done
[ -z "$failed" ] || { echo "valgrind: failures:$failed" >&2; exit 1; }
echo "valgrind: every test program clean"
