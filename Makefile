# make test is the one test command: it checks formatting, runs go vet and
# the race-enabled tests, on miniredis and on a real Redis Cluster started
# from redis-server (installed with apt-get when missing and run as root).
GO ?= go
export HAMMER_REQUIRE_CLUSTER = 1

.PHONY: test vet otel sfv grpc peers redis example bench bench-go

test: redis vet otel sfv grpc peers
	$(GO) test -race -count=1 -timeout 15m ./...

# hammerotel is a nested module: ./... above does not reach it.
otel:
	cd hammerotel && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# hammergrpc and examples/grpcserver are nested modules too, so that the
# hammer module does not depend on gRPC.
grpc:
	cd hammergrpc && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	cd examples/grpcserver && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# rlheader/sfvtest is a nested module too: its tests parse rlheader's
# fields with an RFC 9651 parser that the root module does not depend on.
sfv:
	cd rlheader/sfvtest && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# bench is a nested module too: make test vets and builds it (its peer run
# skips unless HAMMER_PEER_BENCH=1); make bench runs it.
peers:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

# bench compares this library with go-redis/redis_rate and ulule/limiter on
# one real cluster, in one run, and prints the ratios; then it measures the
# Redis CPU of a check (Hit with 1 and 3 rules) and the Redis memory per id
# of each rule kind (see bench/README.md).
bench: redis
	cd bench && HAMMER_PEER_BENCH=1 $(GO) test -run 'TestPeers|TestRedisCPU|TestMemory' -count=1 -v -timeout 30m .

# bench-go runs the Go benchmarks of the root package (miniredis and a real
# cluster, with a raw go-redis baseline in the same run, and the batch
# script's cost on one node).
bench-go: redis
	$(GO) test -run '^$$' -bench 'CheckRate|Hit|DenyCache|Latency|BatchScript' -benchtime 3s -timeout 30m .

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
