// Package loopback gives tests addresses on 127.0.0.1: tests and
// benchmarks never reach past loopback, and a port that nothing listens
// on stands for a service that is down, or is handed to a server the
// test starts.
package loopback
