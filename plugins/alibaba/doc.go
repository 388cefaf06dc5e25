// Package alibaba is the probe served as gopatrol-probe-alibaba (one name
// of the multi-call binary cmd/gopatrol-probes). It detects an Alibaba
// Cloud ECS instance through its metadata service in hardened (token)
// mode: PUT /latest/api/token, then the meta-data items with the token
// header.
package alibaba
