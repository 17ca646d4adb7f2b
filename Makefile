GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: all build run test check bench deps dashboards clean

all: build

deps:
	@bash scripts/deps.sh

build:
	$(GO) build -o bin/hybrid-agent ./cmd/hybrid-agent

## run: the agent and its exporters on this host, behind basic auth on localhost
run:
	@bash scripts/run.sh

## test: every test, against a real MariaDB, the Docker engine and promtool
test: deps check
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## check: formatting, vet and import boundaries
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: our exporters beside node_exporter and mysqld_exporter on this machine
bench: deps build
	@bash scripts/bench.sh

## dashboards: regenerate dashboards/*.json from the Go code (a test fails on drift)
dashboards:
	$(GO) run ./dashboards/cmd/gen -out dashboards -prune

clean:
	rm -rf bin .run
