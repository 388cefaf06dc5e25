# gopatrol. The README's two commands, `make run` and `make test`, do all the
# set-up on a fresh Debian machine: `deps` installs what is missing.

GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X main.version=$(VERSION)

# Debian packages the build, the generators and the tests use.
DEB_PKGS := clang llvm libbpf-dev bpftool protobuf-compiler acl attr hyperfine \
            iproute2 util-linux libssl-dev ca-certificates gcc libc6-dev \
            git curl

# CI (CI=true) must run the eBPF tests: a missing kernel capability fails
# them there instead of skipping. .ci/run sets GOPATROL_REQUIRE_BPF=1
# itself; this covers other CI systems that run make test.
ifeq ($(CI),true)
export GOPATROL_REQUIRE_BPF ?= 1
endif

# How long each fuzz target runs: a few seconds in `make test`, a minute
# in `make fuzz` (override with FUZZTIME=10m, or FUZZ=otelcfg for a subset).
FUZZTIME ?=

.PHONY: all deps build run test fuzz bench generate fmt vet clean image soak collector

all: build

# The real servers that agent/internal/servertest starts for the notify and query tests.
DEB_PKGS += prometheus-alertmanager prometheus mariadb-server postgresql

# Debian's packaged Go for the compatibility matrix (agent/check/matrix): a
# Go root in /usr/lib/go-1.NN with links into /usr/share. The versioned
# package, not golang-go, so that no /usr/bin/go shadows the project's Go
# (bookworm's golang-go is golang-1.19-go plus that link).
DEB_PKGS += golang-1.19-go

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The built-in probes: the names cmd/gopatrol-probes answers to.
PROBES := aws alibaba gcp azure openshift

# Static binaries (CGO_ENABLED=0): the image (Dockerfile) has no libc.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gopatrol ./cmd/gopatrol
	@# The probe plugins and their manifest, ready for --plugin-dir $(BIN)/plugins:
	@# one multi-call binary (cmd/gopatrol-probes) under the five names, as
	@# hard links, so that the five probe processes share one file's pages
	@# (the host refuses symlinks); the manifest lists each name. The host
	@# refuses files writable by group or others, hence chmod.
	@mkdir -p $(BIN)/plugins
	rm -f $(BIN)/plugins/gopatrol-probe-*
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/plugins/gopatrol-probe-aws ./cmd/gopatrol-probes
	cd $(BIN)/plugins && for p in $(PROBES); do [ $$p = aws ] || ln gopatrol-probe-aws gopatrol-probe-$$p; done && \
		chmod go-w . gopatrol-probe-* && sha256sum gopatrol-probe-* > SHA256SUMS && chmod 0644 SHA256SUMS

# The container image, with docker or podman, whichever is installed
# (IMAGE=registry/gopatrol:tag to name it). This project's machines have
# neither working; deploy/image's test checks what the image would hold.
IMAGE ?= gopatrol:$(VERSION)
image:
	@engine=$$(command -v docker || command -v podman); \
	if [ -z "$$engine" ]; then \
		echo "make image: neither docker nor podman is installed (make build builds what the image holds)" >&2; exit 1; \
	fi; \
	echo "$$engine build -t $(IMAGE) ."; \
	$$engine build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

# The OpenTelemetry Collector that deploy/collector's test runs, built
# with ocb at the pinned version into ~/.cache/gopatrol (outside the
# repository); the first build is long (docs/deploy.md), so CI runs this
# before the tests.
collector:
	$(GO) test -count=1 -timeout 30m -run 'TestCollectorValidatesConfig' ./deploy/collector

run: build
	./$(BIN)/gopatrol check

# The tests, then every fuzz target of the tree (scripts/fuzz.sh finds
# them) for a few seconds each.
test: deps
	$(GO) vet ./...
	@# The ocb-built Collector first, without go test's 12-minute bound:
	@# a cold machine's first build is long (docs/deploy.md), later runs
	@# find it cached in ~/.cache/gopatrol.
	$(MAKE) collector
	$(GO) test -p 2 -timeout 12m $$($(GO) list ./... | grep -v '/agent/check/matrix$$')
	@# The release matrix builds with every Go release from 1.21: where the
	@# build cache is cold for them (a new machine, a new release), its first
	@# run compiles each release's standard library, longer than the 12
	@# minutes above (docs/checks.md); it gets a budget of its own.
	$(GO) test -timeout 40m ./agent/check/matrix
	@# deploy/kubernetes is a module of its own: kustomize and the
	@# Kubernetes API types stay out of gopatrol's module graph.
	cd deploy/kubernetes && $(GO) test -timeout 5m ./...
	@# deploy/grafana too: the Grafana Foundation SDK generates the board.
	cd deploy/grafana && $(GO) vet ./... && $(GO) test -timeout 5m ./...
	GO=$(GO) FUZZTIME=$(or $(FUZZTIME),3s) scripts/fuzz.sh

# Issue 19's soak (agent/soak): the real agent through every fault at the
# issue's durations (a 5-minute collector and notification-target outage,
# a plugin kill every 30 s, a broken SIGHUP every minute, 1,000 builds and
# a million failing opens), about 14 minutes. Its samples, figures and
# plot go to docs/soak (SOAK_OUT=dir elsewhere). `make test` runs the
# same suite with every fault in seconds.
SOAK_OUT ?= $(CURDIR)/docs/soak
soak: deps
	GOPATROL_SOAK=full SOAK_OUT=$(SOAK_OUT) $(GO) test -count=1 -timeout 20m -v ./agent/soak/

# Every fuzz target for a minute (FUZZTIME). Failing inputs land in the
# package's testdata/fuzz/: fix the parser, commit them as regressions.
fuzz: deps
	GO=$(GO) FUZZTIME=$(or $(FUZZTIME),60s) scripts/fuzz.sh

# Every target of docs/benchmarks.md lives in a benchmark; the doctor's one
# (BenchmarkDoctorVsSeed) runs hyperfine against ../shared/bench/seed-checks.sh.
bench: deps build
	$(GO) test -p 1 -timeout 60m -run '^$$' -bench . -benchmem -benchtime 3x ./...

generate: deps
	$(GO) generate ./...
	@# The Grafana board (deploy/grafana/gopatrol-health.json), from its own module.
	cd deploy/grafana && $(GO) generate ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
