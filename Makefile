# Shipgate's build. `make test` is what CI runs (.ci/run); it installs what
# the tests need first when running as root in CI.
GO ?= go
GOLANGCI_LINT_VERSION ?= v2.6.2
FUZZTIME ?= 30s

.PHONY: build test deps kube vet lint bench fuzz demo clean

build:
	$(GO) build -ldflags "-X github.com/shipgate/shipgate/internal/cli.Commit=$$(git rev-parse HEAD 2>/dev/null) -X github.com/shipgate/shipgate/internal/cli.Version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/shipgate ./cmd/shipgate

deps:
	@scripts/deps.sh test

# The Kubernetes control plane that internal/kubetest runs (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok),
# built from the Go module proxy into a cache keyed by version: ~12 minutes
# cold on 2 cores, instant when cached. The tests find it the same way.
kube:
	@scripts/kube/build.sh >/dev/null

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd internal/flags/oracle && $(GO) vet -mod=mod ./...

# The end-to-end packages judge real latency: they run after the others,
# one at a time, so that no other test binary competes for the two cores.
E2E := ./internal/server ./internal/demo
# flagd's evaluator, the oracle of the flag tests, is a separate module
# (internal/flags/oracle); -mod=mod lets it follow the main go.mod.
test: deps vet kube
	$(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -v -e /internal/server$$ -e /internal/demo$$)
	cd internal/flags/oracle && $(GO) test -mod=mod -count=1 -timeout 30m ./...
	$(GO) test -count=1 -timeout 30m -p 1 $(E2E)

lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run ./...

include bench.mk

bench: bench-router
	$(GO) test -run '^$$' -bench . -benchmem ./internal/analysis/
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 3 ./internal/migrate/sqldb/
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/flags/
	cd internal/flags/oracle && $(GO) test -mod=mod -run '^$$' -bench . -benchmem -count 5 ./...

# Runs every fuzz target for FUZZTIME each.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseGoose$$' -fuzztime $(FUZZTIME) ./internal/migrate/
	$(GO) test -run '^$$' -fuzz '^FuzzParseGolangMigrate$$' -fuzztime $(FUZZTIME) ./internal/migrate/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDbmate$$' -fuzztime $(FUZZTIME) ./internal/migrate/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSQLMigrate$$' -fuzztime $(FUZZTIME) ./internal/migrate/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNames$$' -fuzztime $(FUZZTIME) ./internal/migrate/
	$(GO) test -run '^$$' -fuzz '^FuzzParseFile$$' -fuzztime $(FUZZTIME) ./internal/flags/
	$(GO) test -run '^$$' -fuzz '^FuzzCompileRule$$' -fuzztime $(FUZZTIME) ./internal/flags/
	$(GO) test -run '^$$' -fuzz '^FuzzParseJUnit$$' -fuzztime $(FUZZTIME) ./internal/testsignal/

demo:
	$(GO) run ./cmd/shipgate demo

clean:
	rm -rf bin
