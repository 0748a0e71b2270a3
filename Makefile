# exportd: `make demo` runs the dev stack with a real export; `make test`
# runs every test against a real PostgreSQL and Temporal dev server.

GO            ?= go
TOOLS         := $(CURDIR)/.tools
TEMPORAL      := $(TOOLS)/bin/temporal
# The Temporal CLI is pinned and built in its own module graph: `go install
# pkg@version` ignores this module's go.mod, whose Go SDK would conflict
# with the Temporal server the CLI embeds.
TEMPORAL_CLI  := github.com/temporalio/cli/cmd/temporal@v1.5.1
# `make cluster` runs the pinned Temporal server (not the CLI's dev server),
# its schema tool and the release's schema files, which `go install` leaves
# in the module cache; built and copied once, like the CLI.
TEMPORAL_RELEASE  := 1.31.0
TEMPORAL_SERVER   := $(TOOLS)/bin/temporal-server
TEMPORAL_SQL_TOOL := $(TOOLS)/bin/temporal-sql-tool
TEMPORAL_SCHEMA   := $(TOOLS)/temporal-schema/$(TEMPORAL_RELEASE)/postgresql/v12
# The linters, pinned, built once into a directory named after their
# version (so that a new pin builds anew) rather than `go run` each time.
# staticcheck v0.8.2 is the newest release and loads every package under
# Go 1.26.
STATICCHECK_VERSION   := v0.8.2
WORKFLOWCHECK_VERSION := v0.6.0
STATICCHECK   := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
WORKFLOWCHECK := $(TOOLS)/workflowcheck-$(WORKFLOWCHECK_VERSION)/workflowcheck
DATA_DIR      ?= $(CURDIR)/.data
EXPORTD       := $(CURDIR)/bin/exportd
FAKES3        := $(CURDIR)/bin/fakes3
GO_SOURCES    := $(shell find . -name '*.go' -not -path './.tools/*' -not -path './.data/*') go.mod go.sum $(shell find postgres/migrations -name '*.sql' 2>/dev/null)

export EXPORTD_TEMPORAL_BIN := $(TEMPORAL)

.PHONY: all build demo dev cluster test test-cluster test-short lint check tools lint-tools cluster-tools postgres clean

all: build

build: $(EXPORTD)

$(EXPORTD): $(GO_SOURCES)
	$(GO) build -o $@ ./cmd/exportd

$(FAKES3): $(GO_SOURCES)
	$(GO) build -o $@ ./cmd/fakes3

tools: $(TEMPORAL) lint-tools

lint-tools: $(STATICCHECK) $(WORKFLOWCHECK)

cluster-tools: $(TEMPORAL_SERVER) $(TEMPORAL_SQL_TOOL) $(TEMPORAL_SCHEMA)

# go install names the binaries after their directories (server, sql).
$(TEMPORAL_SERVER):
	@echo "building the Temporal server $(TEMPORAL_RELEASE) into $(TOOLS)/bin, once; this takes a few minutes"
	GOBIN=$(TOOLS)/build $(GO) install go.temporal.io/server/cmd/server@v$(TEMPORAL_RELEASE)
	mkdir -p $(dir $@) && mv $(TOOLS)/build/server $@

$(TEMPORAL_SQL_TOOL):
	GOBIN=$(TOOLS)/build $(GO) install go.temporal.io/server/cmd/tools/sql@v$(TEMPORAL_RELEASE)
	mkdir -p $(dir $@) && mv $(TOOLS)/build/sql $@

$(TEMPORAL_SCHEMA):
	rm -rf $@.tmp && mkdir -p $(dir $@)
	src=$$(cd / && GOFLAGS= $(GO) mod download -json go.temporal.io/server@v$(TEMPORAL_RELEASE) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
		cp -R "$$src/schema/postgresql/v12" $@.tmp && chmod -R u+w $@.tmp && mv $@.tmp $@

$(TEMPORAL):
	@echo "building the Temporal CLI ($(TEMPORAL_CLI)) into $(TOOLS)/bin, once; this takes a few minutes"
	GOBIN=$(TOOLS)/bin $(GO) install $(TEMPORAL_CLI)

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(WORKFLOWCHECK):
	GOBIN=$(dir $@) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

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

# docker-compose.yml's topology without Docker: PostgreSQL with three
# databases, the Temporal server on it, an S3 server, two workers, two APIs
# and the demo data. It stays up until Ctrl-C; <DATA_DIR>/cluster.json
# says where everything is.
cluster: build $(FAKES3) cluster-tools postgres
	$(EXPORTD) cluster --data-dir $(DATA_DIR) --temporal-server-bin $(TEMPORAL_SERVER) \
		--temporal-sql-tool $(TEMPORAL_SQL_TOOL) --temporal-schema-dir $(TEMPORAL_SCHEMA) --s3-bin $(FAKES3)

# `make test` checks first, so that what `make check` keeps true stays
# true in CI (.ci/run runs `make test`).
test: tools postgres check
	$(GO) test -count=1 -timeout 20m ./...

# The topology test: `exportd cluster` (as `make cluster` runs it) against
# `exportd dev`. Separate from `test` so that only it waits for the
# Temporal server build.
test-cluster: tools cluster-tools postgres
	$(GO) test -count=1 -tags cluster -timeout 10m ./e2e/cluster/

lint: lint-tools
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(WORKFLOWCHECK) ./...

# check is lint plus what drifts unnoticed: gofmt and go.mod/go.sum.
check: lint
	@unformatted=$$(gofmt -l $(filter %.go,$(GO_SOURCES))); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

clean:
	rm -rf bin $(DATA_DIR)
