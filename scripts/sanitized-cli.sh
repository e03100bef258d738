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
# Leaks of allocations made inside libhdf5 (HDF5 1.10.8 loses what it decoded of some corrupt
# files) are suppressed, as in fuzzing (fuzz/lsan.supp); h5ml's own leaks are reported.
exec env LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 \
  LSAN_OPTIONS="suppressions=$(dirname "$0")/../fuzz/lsan.supp:print_suppressions=0" \
  "$(dirname "$0")/../build-asan/h5ml" "$@"
