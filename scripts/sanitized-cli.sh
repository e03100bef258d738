#!/bin/sh
# The sanitizer build's h5ml for the Python tests (`make sanitize`): the tests' Python runs
# with libasan preloaded and leak checks off (the interpreter keeps memory to the end by
# design); the command line itself runs with leak checks on, so a leak in h5ml fails a test.
# Other preloaded libraries (the fault shim of tests/faults) stay, ahead of the ASan runtime
# the program links.
preload=""
for p in ${LD_PRELOAD:-}; do
  case $p in *libasan*) ;; *) preload="$preload $p" ;; esac
done
exec env LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 \
  "$(dirname "$0")/../build-asan/h5ml" "$@"
