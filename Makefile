# make test is the one test command: go vet and the race-enabled tests.
GO ?= go

.PHONY: test vet example

test: vet
	$(GO) test -race -count=1 ./...

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

example:
	$(GO) run ./examples/quickstart
