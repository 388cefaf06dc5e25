// Package cache checks the go command's two caches: the module cache
// (GOMODCACHE: links and writability) and the build cache (GOCACHE:
// resolvable, absolute, writable, on a sane filesystem). Writability is
// probed by doing, as the build user (package access). Paths are resolved
// inside the target's root with Target.Resolve.
package cache
