# exportd: `make demo` runs the dev stack with a real export; `make test`
# runs every test against a real PostgreSQL and Temporal dev server.

GO            ?= go
TOOLS         := $(CURDIR)/.tools
TEMPORAL      := $(TOOLS)/bin/temporal
# The Temporal CLI is pinned and built in its own module graph: `go install
# pkg@version` ignores this module's go.mod, whose Go SDK would conflict
# with the Temporal server the CLI embeds.
TEMPORAL_CLI  := github.com/temporalio/cli/cmd/temporal@v1.5.1
DATA_DIR      ?= $(CURDIR)/.data
EXPORTD       := $(CURDIR)/bin/exportd
GO_SOURCES    := $(shell find . -name '*.go' -not -path './.tools/*' -not -path './.data/*') go.mod go.sum $(shell find postgres/migrations -name '*.sql' 2>/dev/null)

export EXPORTD_TEMPORAL_BIN := $(TEMPORAL)

.PHONY: all build demo dev test test-short lint tools postgres clean

all: build

build: $(EXPORTD)

$(EXPORTD): $(GO_SOURCES)
	$(GO) build -o $@ ./cmd/exportd

tools: $(TEMPORAL)

$(TEMPORAL):
	@echo "building the Temporal CLI ($(TEMPORAL_CLI)) into $(TOOLS)/bin, once; this takes a few minutes"
	GOBIN=$(TOOLS)/bin $(GO) install $(TEMPORAL_CLI)

# PostgreSQL's server binaries (initdb, postgres) must be on the machine:
# Debian's package is installed when we are root, else we say what to do.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing PostgreSQL (Debian package postgresql)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries not found: run 'sudo apt-get install postgresql' (Debian/Ubuntu) and try again"; exit 1; \
	fi

# The dev stack (private PostgreSQL, Temporal dev server with Web UI,
# worker, API), seeded with demo data, then one real export through the
# HTTP API, shown step by step. It stays up until Ctrl-C.
demo: build tools postgres
	$(EXPORTD) dev --data-dir $(DATA_DIR) --demo

dev: build tools postgres
	$(EXPORTD) dev --data-dir $(DATA_DIR)

test: tools postgres
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

lint: tools
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 ./...

clean:
	rm -rf bin $(DATA_DIR)
