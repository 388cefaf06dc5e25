// Command gopatrol-probe-alibaba detects an Alibaba Cloud ECS instance
// through its metadata service in hardened (token) mode: PUT
// /latest/api/token, then the meta-data items with the token header.
package main
