# msgr developer entry points. `make help` lists them.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BUILD ?= build
# Race-enabled tests of the Go core; -count=1 so nothing is served from cache.
GOTEST_FLAGS ?= -race -count=1 -timeout 15m
# Plain `make` builds everything (the Go commands and libmsgr.so).
.DEFAULT_GOAL := build

.PHONY: help deps build test test-go test-python vet fmt-check demo bench fuzz clean

help:
	@echo "make demo    run the demo: echo server and client over loopback with a live report"
	@echo "make test    build everything and run every test (installs what is missing)"
	@echo "make bench   Go benchmarks (-benchmem) of the core"
	@echo "make fuzz    30 s of native Go fuzzing per fuzz target"
	@echo "make build   build the Go packages and commands into $(BUILD)/"
	@echo "make lib     build the C library $(BUILD)/lib/libmsgr.so (C ABI: capi/README.md)"
	@echo "make install install msgr.h, msgr.hpp, libmsgr.so, msgr.pc, CMake package (PREFIX=/usr/local, DESTDIR)"
	@echo "make test-c  C API under ASan+UBSan and cgocheck2, and the CMake build + ctest"
	@echo "make test-python  pip-installs bindings/python (building libmsgr.so) in $(BUILD)/python-venv and runs pytest"
	@echo "make bench-c the C API against the pure Go messenger on W1-W5 (examples/c/bench_compare.sh)"

deps:
	@scripts/ensure-deps.sh base ceph

build: deps lib
	$(GO) build ./...
	$(GO) build -o $(BUILD)/bin/ ./cmd/...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test-go:
	$(GO) test $(GOTEST_FLAGS) ./...

test: deps build fmt-check vet test-go test-c test-python
	@echo "make test: all passed"

# A venv under $(BUILD) (python3-venv from apt-get if missing), pytest and
# pyzmq from PyPI, and the package built from source: bindings/python/run-tests.sh.
test-python: deps
	BUILD=$(BUILD) bindings/python/run-tests.sh

demo: deps
	$(GO) run ./cmd/msgr-demo

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./core/...

# Every Fuzz* target, 30 s each (FUZZTIME=10s make fuzz for less).
FUZZTIME ?= 30s
fuzz: deps
	@set -e; for pkg in $$($(GO) list ./core/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

clean:
	rm -rf $(BUILD)

# ---- The C ABI: libmsgr.so, include/msgr.h, C/C++ bindings (capi/README.md) ----
# capi/build.sh is the one recipe for the library (also used by CMake and
# capi_test.go); bindings/c/install.sh the one for installing it.
PREFIX ?= /usr/local
LIBDIR ?= lib
INCLUDEDIR ?= include
CXX ?= c++
CAPI_VARIANTS ?= asan cgocheck2
EXAMPLES_C := echo_server echo_client priority_dispatch pull_loop msgr_bench mon_client
EX_FLAGS := -O2 -Wall -Wextra -Werror -Iinclude -Ibindings/c -L$(BUILD)/lib -Wl,-rpath,'$$ORIGIN/../lib'

.PHONY: lib install examples header-check abi-check test-c test-cmake bench-c

lib:
	capi/build.sh $(BUILD)/lib

install: lib
	bindings/c/install.sh $(BUILD)/lib "$(PREFIX)" "$(LIBDIR)" "$(INCLUDEDIR)"

examples: lib
	@mkdir -p $(BUILD)/examples
	@set -e; for e in $(EXAMPLES_C); do \
	  $(CC) -std=c11 $(EX_FLAGS) examples/c/$$e.c -o $(BUILD)/examples/$$e -lmsgr -lpthread; done
	$(CXX) -std=c++17 $(EX_FLAGS) examples/cpp/echo.cpp -o $(BUILD)/examples/echo_cpp -lmsgr

# msgr.h alone as C99/C11 and C++17/20 with -Wall -Wextra -Werror -pedantic.
header-check:
	$(GO) test -count=1 -run 'TestHeader' ./capi

# Exported symbols = abi/symbols.txt = msgr.h's functions; programs built
# against released headers (abi/<version>/msgr.h) run on this library.
abi-check:
	$(GO) test -count=1 -run 'TestSymbols|TestABICompat' ./capi

# The C programs against the ASan+UBSan and cgocheck2 builds (the plain
# build runs in test-go), then the CMake build and ctest.
test-c: deps
	MSGR_CAPI_VARIANTS="$(CAPI_VARIANTS)" $(GO) test -count=1 -timeout 20m -run 'TestVariants' ./capi
	$(MAKE) test-cmake

test-cmake:
	@command -v cmake >/dev/null || { echo "test-cmake: cmake not installed, skipped"; exit 0; }; \
	cmake -S . -B $(BUILD)/cmake -DMSGR_GO_TESTS=OFF >/dev/null && \
	cmake --build $(BUILD)/cmake -j2 >/dev/null && \
	(cd $(BUILD)/cmake && ctest --output-on-failure -j1)

bench-c: examples
	$(GO) build -o $(BUILD)/bin/ ./cmd/msgr-bench
	examples/c/bench_compare.sh
