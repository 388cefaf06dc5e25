// Package probev1 is the generated Go code of gopatrol.probe.v1, the wire
// protocol between the host (plugins/host) and a probe plugin (through
// plugins/sdk). It is internal: plugin authors program against the SDK's
// Go types, so the protocol can grow fields without breaking them.
//
// Do not edit the .pb.go files: change proto/gopatrol/probe/v1/probe.proto
// and run `go generate ./plugins/internal/...` (Debian's protoc, with
// protoc-gen-go and protoc-gen-go-grpc pinned as tools in go.mod).
// TestGeneratedCodeIsFresh fails when the committed code differs from what
// gen.sh produces.
package probev1
