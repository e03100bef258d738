# h5ml: `make` builds into build/, `make test` runs every test, `make demo` runs the main job.
PY      := /usr/bin/python3
BUILD   := build
CMAKE_FLAGS ?=
JOBS    := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build deps test ctest pytest demo bench install clean sanitize

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

sanitize: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS="-DH5ML_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
