# msgr developer entry points. `make help` lists them.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BUILD ?= build
# Race-enabled tests of the Go core; -count=1 so nothing is served from cache.
GOTEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: help deps build test test-go vet fmt-check demo bench fuzz clean

help:
	@echo "make demo    run the demo: echo server and client over loopback with a live report"
	@echo "make test    build everything and run every test (installs what is missing)"
	@echo "make bench   Go benchmarks (-benchmem) of the core"
	@echo "make fuzz    30 s of native Go fuzzing per fuzz target"
	@echo "make build   build the Go packages and commands into $(BUILD)/"

deps:
	@scripts/ensure-deps.sh base ceph

build: deps
	$(GO) build ./...
	$(GO) build -o $(BUILD)/bin/ ./cmd/...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test-go:
	$(GO) test $(GOTEST_FLAGS) ./...

test: deps build fmt-check vet test-go
	@echo "make test: all passed"

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
