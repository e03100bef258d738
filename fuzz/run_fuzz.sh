#!/bin/sh
# Runs the fuzz targets of a libFuzzer build (`make fuzz`): for each target, first its
# regressions (fuzz/regressions/T, each input once), then FUZZ_SECONDS (default 60) of
# fuzzing from a copy of fuzz/corpus/T in a scratch directory (the committed corpus does not
# grow), in libFuzzer's fork mode so that a crash inside libhdf5 does not end the run.
# Prints per target the executions run and the result.
#
# Every crash, leak, timeout or out-of-memory input found is replayed and its report
# compared with fuzz/known-hdf5/KNOWN (crashes inside libhdf5 that h5ml cannot prevent);
# anything else is a new finding: its input is kept in BUILD/fuzz-findings/T/ and the script
# exits 1.
#
# Two kinds of finding inside libhdf5 are told apart from h5ml's own:
# - an allocation over ASan's limit (1 TiB) that libhdf5 asks for, from a size the file
#   states, and that the input runs clean with when the allocator returns NULL instead (as
#   malloc does without ASan; HDF5 then returns an error): counted as refused, not new;
# - with FUZZ_HDF5_NONFATAL=1 (CI's short pass), a new crash whose top frame is inside
#   libhdf5 is printed and kept but does not fail the run: a random 20 s pass that happens
#   on a new libhdf5 bug should not stop a change from landing; nor does a finding that
#   neither ASan's replay nor valgrind reproduces. `make fuzz` stays strict.
# libhdf5 reading past a buffer it allocated counts as known (fuzz/known-hdf5/README.md). A
# finding ASan's replay does not reproduce is replayed under valgrind (plain build).
#
# Usage: fuzz/run_fuzz.sh [BUILD_DIR]   (default build-fuzz)
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (default: all five), FUZZ_WORK,
# FUZZ_HDF5_NONFATAL.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build-fuzz}
SECS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"extxyz atoms_reader signals_reader matimport json_meta"}
# FUZZ_WORK=DIR keeps the work (grown corpora, findings, logs) in DIR across runs, for long
# campaigns; by default it is a scratch directory removed at the end.
if [ -n "${FUZZ_WORK:-}" ]; then
  SCRATCH=$FUZZ_WORK
  mkdir -p "$SCRATCH"
else
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/h5ml-fuzz.XXXXXX")
  trap 'rm -rf "$SCRATCH"' EXIT INT TERM
fi

# Largest input per target: the seeds fit, with room to grow.
max_len() {
  case $1 in
    extxyz | json_meta) echo 4096 ;;
    matimport) echo 32768 ;;
    atoms_reader) echo 65536 ;;
    signals_reader) echo 131072 ;;
    *) echo 65536 ;;
  esac
}

export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}allocator_may_return_null=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# The top of the crash stack of a report: its first four frames outside the sanitizer and
# libFuzzer runtimes and libc (where the program was when it crashed, leaked or hung). An
# oracle failure (FUZZ FINDING) is h5ml's by definition: no frames.
top_frames() { # report-file
  grep -q 'FUZZ FINDING' "$1" && return 0
  awk '/^ +#[0-9]+ /{s=1; print; next} s{exit}' "$1" |
    grep -vE 'sanitizer|fuzzer::|__interceptor|in (malloc|calloc|realloc|free|memcpy|memset|memmove) |libc\.so|nptl|raise|abort|Malloc|asan|ubsan' |
    head -n 4
}

# Whether the top of a finding's crash stack matches a line "TARGET PATTERN" of
# fuzz/known-hdf5/KNOWN.
is_known() { # target report-file
  top_frames "$2" >"$2.top"
  grep -v '^#' "$ROOT/fuzz/known-hdf5/KNOWN" 2>/dev/null | while read -r kt pattern; do
    [ -n "$kt" ] || continue
    if [ "$kt" = "$1" ] || [ "$kt" = "*" ]; then
      if grep -qF -- "$pattern" "$2.top"; then echo yes; break; fi
    fi
  done | grep -q yes
}

# Whether the first frame of a report's crash stack (outside the runtimes) is in libhdf5.
in_libhdf5() { # report-file
  [ -s "$1.top" ] && head -n 1 "$1.top" | grep -q 'libhdf5'
}

# The first error of a valgrind log in the form of an ASan report (the error's line, then its
# stack as "#N 0xPC in FUNCTION (WHERE)"), and an oracle's FUZZ FINDING line if any.
vg_report() { # valgrind-log
  awk '
    /FUZZ FINDING/ { print; next }
    !e && /^==[0-9]+== [A-Z]/ && !/^==[0-9]+== (Memcheck|Copyright|Using|Command|HEAP|LEAK|ERROR SUMMARY|For lists|All heap)/ {
      e = 1; sub(/^==[0-9]+== /, ""); print "ERROR: valgrind: " $0; next }
    e == 1 && /^==[0-9]+== +(at|by) 0x/ {
      sub(/^==[0-9]+== +(at|by) /, ""); pc = $1; sub(/:$/, "", pc); $1 = ""; sub(/^ /, "")
      fn = $0; where = ""
      if (match(fn, / \(.*\)$/)) { where = substr(fn, RSTART + 1); fn = substr(fn, 1, RSTART - 1) }
      sub(/^\(in /, "(", where)
      printf "    #%d %s in %s %s\n", n++, pc, fn, where; next }
    e == 1 && n > 0 { e = 2 }
  ' "$1"
}

# Whether a report is libhdf5 reading past the end of a heap buffer libhdf5 allocated (both
# the read and the allocation inside libhdf5: HDF5 1.10.8 copies a whole chunk out of a
# decoded chunk that came out shorter, fuzz/known-hdf5/README.md). A write, or a buffer h5ml
# allocated and handed to HDF5, stays a finding.
hdf5_reads_own_buffer() { # report-file
  grep -q 'heap-buffer-overflow' "$1" && grep -q '^READ of size' "$1" && in_libhdf5 "$1" &&
    awk '/^allocated by thread/{s=1; next} s && /^ +#[0-9]+ /{print; next} s{exit}' "$1" |
    grep -vE 'sanitizer|__interceptor|in (malloc|calloc|realloc) |asan' | head -n 1 | grep -q 'libhdf5'
}

# Keeps finding $a of target $t (input, report, valgrind log) in BUILD/fuzz-findings/T/ and
# prints what it is with the top of its report.
keep_finding() { # what
  mkdir -p "$BUILD/fuzz-findings/$t"
  cp "$a" "$a.report" "$BUILD/fuzz-findings/$t/"
  [ -f "$a.valgrind" ] && cp "$a.valgrind" "$BUILD/fuzz-findings/$t/"
  echo "fuzz_$t: $1: $(basename "$a") (input and report in $BUILD/fuzz-findings/$t/):"
  grep -a -E 'FUZZ FINDING|ERROR: |SUMMARY: |^ +#[0-9]+ .* in ' "$a.report" | head -n 12 | sed 's/^/    /'
}

fail=0
for t in $TARGETS; do
  bin=$BUILD/fuzz/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "fuzz_$t: not built ($bin)"
    fail=1
    continue
  fi
  w=$SCRATCH/$t
  mkdir -p "$w/corpus" "$w/artifacts" "$w/tmp"
  cp fuzz/corpus/"$t"/* "$w/corpus/"
  rm -f "$w"/artifacts/*
  n0=$(ls "$w/corpus" | wc -l)

  # The regressions, each once (not in fork mode: a failure here is reported as such).
  reg="none"
  if [ -n "$(ls fuzz/regressions/"$t" 2>/dev/null)" ]; then
    nreg=$(ls fuzz/regressions/"$t" | wc -l)
    if H5ML_FUZZ_TMP=$w/tmp "$bin" -runs=0 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$w/artifacts/" \
        fuzz/regressions/"$t" >"$w/regressions.log" 2>&1; then
      reg="$nreg ok"
    else
      reg="FAILED"
      mkdir -p "$BUILD/fuzz-findings/$t"
      cp "$w/regressions.log" "$BUILD/fuzz-findings/$t/regressions.log"
      fail=1
    fi
  fi

  H5ML_FUZZ_TMP=$w/tmp "$bin" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
      -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$w/artifacts/" "$w/corpus" >"$w/fuzz.log" 2>&1
  # Fork mode's progress lines: "#EXECS: cov: C ft: F corp: N exec/s: E oom/timeout/crash: a/b/c ...".
  execs=$(grep -E '^#[0-9]+: ' "$w/fuzz.log" | tail -n 1 | sed -E 's/^#([0-9]+):.*/\1/')
  cov=$(grep -E '^#[0-9]+: ' "$w/fuzz.log" | tail -n 1 | sed -E 's/.* cov: ([0-9]+).*/\1/')
  n1=$(ls "$w/corpus" | wc -l)

  known=0
  refused=0
  hdf5new=0
  unrepro=0
  new=0
  for a in "$w"/artifacts/crash-* "$w"/artifacts/leak-* "$w"/artifacts/timeout-* "$w"/artifacts/oom-* "$w"/artifacts/slow-unit-*; do
    [ -f "$a" ] || continue
    # An out-of-memory input is replayed with a lower single-allocation limit: in the
    # fuzzing process the memory of earlier inputs added up, alone it may stay under.
    lim=""
    case $(basename "$a") in oom-*) lim="-malloc_limit_mb=1024" ;; esac
    H5ML_FUZZ_TMP=$w/tmp timeout 120 "$bin" -runs=0 -timeout=10 -rss_limit_mb=2048 $lim "$a" >"$a.report" 2>&1
    replay=$?
    # Not reproduced under ASan (which does not see uninitialized memory, and whose replay
    # runs the input alone): the plain build's replay (built by `make`) under valgrind, whose
    # first error stands as the report.
    plain=$ROOT/build/fuzz/fuzz_${t}_replay
    how_found=""
    if [ $replay -eq 0 ] && [ -x "$plain" ] && command -v valgrind >/dev/null; then
      H5ML_FUZZ_TMP=$w/tmp timeout 600 valgrind -q --error-exitcode=99 "$plain" "$a" >"$a.valgrind" 2>&1
      if [ $? -ne 0 ]; then
        mv "$a.report" "$a.asan"
        vg_report "$a.valgrind" >"$a.report"
        replay=1
        how_found=", not reproduced under ASan but under valgrind by $plain"
      fi
    fi
    if [ $replay -ne 0 ] && is_known "$t" "$a.report"; then
      known=$((known + 1))
    elif [ $replay -ne 0 ] && hdf5_reads_own_buffer "$a.report"; then
      known=$((known + 1))
    elif [ $replay -ne 0 ] && grep -q 'allocation-size-too-big' "$a.report" && in_libhdf5 "$a.report" &&
        ASAN_OPTIONS="$ASAN_OPTIONS:allocator_may_return_null=1" H5ML_FUZZ_TMP=$w/tmp timeout 120 \
          "$bin" -runs=0 -timeout=10 -rss_limit_mb=2048 "$a" >"$a.nullreport" 2>&1; then
      refused=$((refused + 1))
    elif [ "${FUZZ_HDF5_NONFATAL:-0}" = 1 ] && { [ $replay -eq 0 ] || in_libhdf5 "$a.report"; }; then
      if [ $replay -eq 0 ]; then
        unrepro=$((unrepro + 1))
        keep_finding "NEW finding, not reproduced on replay nor under valgrind, not failing this run"
      else
        hdf5new=$((hdf5new + 1))
        keep_finding "new finding inside libhdf5, not failing this run (triage it with make fuzz)"
      fi
    else
      new=$((new + 1))
      how="NEW finding$how_found"
      [ $replay -eq 0 ] && how="$how, NOT reproduced on replay, nor under valgrind (threads, timing, or state left by earlier inputs?)"
      keep_finding "$how"
    fi
  done
  result="ok"
  notes=""
  [ "$known" -gt 0 ] && notes="$known known libhdf5 findings, fuzz/known-hdf5"
  [ "$refused" -gt 0 ] && notes="${notes:+$notes; }$refused libhdf5 allocations over 1 TiB refused and handled"
  [ "$hdf5new" -gt 0 ] && notes="${notes:+$notes; }$hdf5new NEW inside libhdf5, not fatal here"
  [ "$unrepro" -gt 0 ] && notes="${notes:+$notes; }$unrepro NEW not reproducible, not fatal here"
  [ -n "$notes" ] && result="ok ($notes)"
  if [ "$new" -gt 0 ]; then
    result="$new NEW finding(s)"
    fail=1
  fi
  printf 'fuzz_%-15s %10s executions in %ss, coverage %s, corpus %s -> %s inputs, regressions %s: %s\n' \
    "$t" "${execs:-0}" "$SECS" "${cov:-?}" "$n0" "$n1" "$reg" "$result"
done
exit $fail
