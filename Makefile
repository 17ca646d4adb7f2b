GO ?= go
STATICCHECK_VERSION ?= v0.8.2
SHELL := /bin/bash
TEST_TIMEOUT ?= 20m

.PHONY: all build run test check bench deps dashboards quiet-run clean

all: build

deps:
	@bash scripts/deps.sh

build:
	CGO_ENABLED=0 $(GO) build -o bin/hybrid-agent ./cmd/hybrid-agent
	$(GO) build -o bin/hybrid ./cmd/hybrid

## run: the agent and its exporters on this host, behind basic auth on localhost
run:
	@bash scripts/run.sh

# RACE_PKGS are the packages whose code runs concurrently (collectors run per
# scrape in parallel, job workers, nginx reloads, notification queues, the
# monitor): make test runs them under the race detector.
RACE_PKGS = ./exporters/... ./agent/jobs/... ./agent/nginx/... ./alerting/... ./rules/evaluator/... ./controlplane/agentclient/...

## test: every test, against a real MariaDB, the Docker engine and promtool
test: deps check
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v -F -x -f <($(GO) list $(RACE_PKGS)))
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

## check: formatting, vet, staticcheck (pinned, run with go run) and import boundaries
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## bench: our exporters beside node_exporter and mysqld_exporter on this machine
bench: deps build
	@bash scripts/bench.sh

## quiet-run: 10 minutes of normal operation (agent, MariaDB, a site, the monitor); only the Watchdog may fire
quiet-run: deps
	HYBRID_QUIET_RUN=$${HYBRID_QUIET_RUN:-10m} $(GO) test -count=1 -timeout 20m -run QuietRun -v ./rules/evaluator

## dashboards: regenerate dashboards/*.json from the Go code (a test fails on drift)
dashboards:
	$(GO) run ./dashboards/cmd/gen -out dashboards -prune

clean:
	rm -rf bin .run
