# h5ml: `make` builds into build/, `make test` runs every test, `make demo` runs the main job.
PY      := /usr/bin/python3
BUILD   := build
CMAKE_FLAGS ?=
JOBS    := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build deps test ctest pytest demo bench soak install clean sanitize valgrind

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory build CMAKE_FLAGS="-DH5ML_WERROR=ON"
	@$(MAKE) --no-print-directory ctest pytest

ctest:
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

pytest:
	@PYTHONPATH=$(CURDIR)/$(BUILD)/python H5ML_BIN=$(CURDIR)/$(BUILD)/h5ml $(PY) -m pytest -q tests/python

demo: deps build
	@scripts/demo.sh $(BUILD)/h5ml

bench: deps build
	@$(PY) bench/run.py --h5ml $(BUILD)/h5ml --bench-dir $(BUILD)/bench

# Long writes at constant memory (a million-structure convert, 100k generated signals);
# not part of `make test`. Results in $(BUILD)/bench/soak.md.
soak: deps build
	@$(PY) bench/soak.py --h5ml $(BUILD)/h5ml --bench-dir $(BUILD)/bench

# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer: the C tests with
# leak checks, then the Python tests on the sanitized module (libasan preloaded into the
# interpreter) and the sanitized command line (leak checks on: scripts/sanitized-cli.sh).
sanitize: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DH5ML_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)
	@LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
	  PYTHONPATH=$(CURDIR)/build-asan/python H5ML_BIN=$(CURDIR)/scripts/sanitized-cli.sh $(PY) -m pytest -q tests/python

# Every C test program under valgrind's memcheck (about 10 minutes on 2 cores).
valgrind: deps build
	@scripts/valgrind-tests.sh $(BUILD)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan

# Fuzzing (fuzz/README.md): libFuzzer + ASan + UBSan build in build-fuzz, then every target
# for FUZZ_SECONDS from a scratch copy of its corpus; new crashes make it fail.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := fuzz_extxyz fuzz_atoms_reader fuzz_signals_reader fuzz_matimport fuzz_json_meta
.PHONY: fuzz
fuzz: deps
	@scripts/install-deps.sh clang libclang-rt-14-dev
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DH5ML_FUZZ=ON -DH5ML_PYTHON=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run_fuzz.sh build-fuzz
