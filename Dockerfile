# gopatrol's image: the agent and its probe plugins, static, on an empty
# base. `make image` builds it with docker or podman; docs/deploy.md.
#
# Build stage: `make build` is the one recipe for the binaries, the plugins
# and their SHA256SUMS manifest, here as on a workstation (deploy/image's
# test checks what it produces).
ARG GO_IMAGE=golang:1.26-bookworm
FROM ${GO_IMAGE} AS build
ARG VERSION=devel
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build VERSION=${VERSION} BIN=/out

# Run stage: nothing but the files. No shell, no package manager: the
# checks run the host's own tools, chrooted into /host.
FROM scratch
# For OTLP over TLS to the collector.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=0:0 --chmod=0555 /out/gopatrol /usr/bin/gopatrol
# The plugin directory and everything in it belong to root and are not
# writable (0555/0444): the plugin host refuses anything else, and a
# read-only root file system keeps it so. Its five gopatrol-probe-* are
# hard links to one multi-call binary, so that the five probe processes
# share its pages: one COPY of the whole directory keeps them linked
# (BuildKit copies a hard link as a link to what it already copied in the
# same instruction). A builder that made five copies would still pass the
# host's checks (each name, its own sum in SHA256SUMS), at the cost of the
# memory the links save; there is no shell here to link them afterwards.
COPY --from=build --chown=0:0 --chmod=0555 /out/plugins/ /usr/lib/gopatrol/plugins/
USER 0:0
ENTRYPOINT ["/usr/bin/gopatrol"]
CMD ["agent", "--config", "/etc/gopatrol/config/agent.yaml"]
