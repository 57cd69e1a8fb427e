# make test is the one test command: it checks formatting, runs go vet and
# the race-enabled tests, on miniredis and on a real Redis Cluster started
# from redis-server (installed with apt-get when missing and run as root).
GO ?= go
export HAMMER_REQUIRE_CLUSTER = 1

.PHONY: test vet otel redis example

test: redis vet otel
	$(GO) test -race -count=1 -timeout 15m ./...

# hammerotel is a nested module: ./... above does not reach it.
otel:
	cd hammerotel && $(GO) vet ./... && $(GO) test -race -count=1 ./...

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# redis installs Debian's redis-server (with redis-cli) when it is missing.
redis:
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing redis-server"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		else \
			echo "redis-server is missing: install it (apt-get install -y redis-server) to run the cluster tests"; exit 1; \
		fi; \
	fi
	@redis-server --version

example:
	$(GO) run ./examples/quickstart
