# The developer loop. CI (.ci/run) runs these same targets.
# Needs only Go and, for the tests, a redis-server binary on PATH.

GO      ?= go
GOFMT   ?= gofmt
CONFIG  ?= config/vigil.demo.yaml
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all run test lint build bench sms clean

all: lint test build

run:
	$(GO) run ./cmd/vigil serve --config $(CONFIG)

# Tests start their own redis-server (internal/redistest); with CI set, a
# missing binary fails them rather than falling back to miniredis.
test:
	$(GO) test -race -count=1 ./...

lint:
	$(GO) vet ./...
	@out="$$($(GOFMT) -l .)"; \
	if [ -n "$$out" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$out"; \
		exit 1; \
	fi

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/vigil ./cmd/vigil

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# make sms FROM=+447700900101 TEXT="VISIT 2 14 Elm Road"
sms:
	$(if $(FROM),,$(error FROM is required, e.g. make sms FROM=+447700900101 TEXT="VISIT 2 14 Elm Road"))
	$(if $(TEXT),,$(error TEXT is required, e.g. make sms FROM=+447700900101 TEXT="VISIT 2 14 Elm Road"))
	$(GO) run ./cmd/vigil sms --config $(CONFIG) --from "$(FROM)" "$(TEXT)"

clean:
	rm -rf bin/
	rm -f coverage.out coverage.html *.test *.out

# deploy-check: promtool's checks of deploy/prometheus (config, alert rules and
# their unit tests). `make test` runs it first. Without promtool on a developer
# machine it says so loudly and skips only these checks; with CI set, a missing
# promtool fails (.ci/run installs it: Debian's prometheus package).
PROMTOOL ?= promtool

.PHONY: deploy-check
deploy-check:
	@if ! command -v $(PROMTOOL) >/dev/null 2>&1; then \
		if [ -n "$$CI" ]; then \
			echo "deploy-check: $(PROMTOOL) not found and CI is set: install it (apt-get install prometheus)" >&2; \
			exit 1; \
		fi; \
		echo "########################################################################"; \
		echo "# deploy-check: $(PROMTOOL) NOT FOUND: the Prometheus alert rules are NOT checked."; \
		echo "# Install it (Debian/Ubuntu: apt-get install prometheus) to run these checks."; \
		echo "########################################################################"; \
		exit 0; \
	fi; \
	set -e; \
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml; \
	$(PROMTOOL) check rules deploy/prometheus/rules/*.rules.yml; \
	$(PROMTOOL) test rules deploy/prometheus/rules/*.test.yml

test: deploy-check

# The chaos test (internal/chaos, issue 5): builds the real binary and runs 3
# replicas on one redis-server (AOF on) with one fake Twilio, kill -9s and pauses
# replicas and restarts Redis while thousands of visits fall due, then prints
# alerts and reminders expected, sent, missing, duplicated and their lateness.
# It fails on a missing message or a duplicate two live replicas sent.
# chaos: 3000 visits due over 3 minutes (about 4 minutes in all).
# chaos-short: 1000 visits due over 40 s (about 1.5 minutes; CI runs it).
# VIGIL_CHAOS_SEED=N repeats a run's choices; VIGIL_CHAOS_RACE=1 builds the
# binary with the race detector (CI does); VIGIL_CHAOS_SENDS_PER_SECOND=N runs
# under a tight Twilio throttle.
.PHONY: chaos chaos-short
chaos:
	VIGIL_CHAOS=long $(GO) test -tags chaos -count=1 -run '^TestChaos$$' -v -timeout 20m ./internal/chaos/

chaos-short:
	VIGIL_CHAOS=short $(GO) test -tags chaos -count=1 -run '^TestChaos$$' -v -timeout 10m ./internal/chaos/

# The load figures of README "Performance" (cmd/vigil-load). Each run starts its
# own redis-server (random port, temporary directory, stopped by PID) and an
# in-process fake Twilio, and runs the daemons in-process (webhooks -daemon bin/vigil:
# the built binary in a process of its own). `make load` runs the
# standard set (about 25 minutes on 2 cores); LOAD picks one, e.g.
#   make load LOAD="lateness -visits 1000000 -runs 1"
#   make load LOAD="storm -timers 10000 -max-sends 100"
LOAD ?=
.PHONY: load
load: build
	$(GO) build -o bin/vigil-load ./cmd/vigil-load
	@if [ -n '$(LOAD)' ]; then \
		bin/vigil-load $(LOAD); \
	else \
		set -e; \
		bin/vigil-load lateness -visits 10000; \
		bin/vigil-load lateness -visits 100000; \
		bin/vigil-load storm -timers 10000; \
		bin/vigil-load storm -timers 10000 -max-sends 100 -runs 1; \
		bin/vigil-load webhooks -rate 5000 -duration 30s; \
		bin/vigil-load webhooks -rate 5000 -duration 30s -daemon bin/vigil; \
		bin/vigil-load webhooks -closed -duration 30s; \
		bin/vigil-load memory -visits 100000; \
	fi
