#!/bin/sh
# gen.sh OUTDIR: generates the Go code of proto/gopatrol/probe/v1/probe.proto
# into OUTDIR with Debian's protoc and the plugins pinned in go.mod's tool
# block, so that the output only depends on those versions. Used by
# go:generate in this package and by TestGeneratedCodeIsFresh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1
gen_go=$(go tool -n protoc-gen-go)
gen_grpc=$(go tool -n protoc-gen-go-grpc)
exec protoc \
	--plugin=protoc-gen-go="$gen_go" \
	--plugin=protoc-gen-go-grpc="$gen_grpc" \
	-I "$here/proto" \
	--go_out="$out" --go_opt=module=github.com/gopatrol/gopatrol/plugins/internal/probev1 \
	--go-grpc_out="$out" --go-grpc_opt=module=github.com/gopatrol/gopatrol/plugins/internal/probev1 \
	gopatrol/probe/v1/probe.proto
