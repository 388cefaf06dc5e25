// Package probev1 is the generated Go code of gopatrol.probe.v1, the
// protocol between the host and a probe plugin. Do not edit the .pb.go
// files: change ../proto/gopatrol/probe/v1/probe.proto and run
// `go generate ./plugins/sdk/...` (Debian's protoc, the protoc-gen-go and
// protoc-gen-go-grpc pinned as tools in go.mod).
package probev1

//go:generate sh ../gen.sh .
