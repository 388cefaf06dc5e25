package matrix

import (
	"runtime"
	"slices"
	"testing"
)

func TestNewest(t *testing.T) {
	p := "." + runtime.GOOS + "-" + runtime.GOARCH
	other := ".plan9-mips"
	if runtime.GOOS == "plan9" {
		other = ".linux-s390x"
	}
	versions := []string{
		"v0.0.1-go1.20.14" + p,    // older than the matrix
		"v0.0.1-go1.21.0" + p,     // superseded patch
		"v0.0.1-go1.21.13" + p,    // newest of 1.21
		"v0.0.1-go1.21.9" + p,     // 9 < 13: compared as versions, not strings
		"v0.0.1-go1.22rc1" + p,    // prerelease: never
		"v0.0.1-go1.22.2" + p,     // newest of 1.22
		"v0.0.1-go1.23.1" + other, // another platform
		"v0.0.1-go1.24.0" + p,     // only patch of 1.24
		"v0.0.1-go1.25beta1" + p,  // prerelease
		"garbage",                 // not a toolchain version
		"v0.0.2-go1.26.0" + p,     // not the toolchain module's scheme
	}
	got := Newest(versions, 21)
	want := []string{"go1.21.13", "go1.22.2", "go1.24.0"}
	if !slices.Equal(got, want) {
		t.Errorf("Newest = %v, want %v", got, want)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv(CacheEnv, "relative/dir")
	if _, err := CacheDir(); err == nil {
		t.Errorf("%s=relative/dir: no error", CacheEnv)
	}
	t.Setenv(CacheEnv, "/var/cache/matrix")
	if d, err := CacheDir(); err != nil || d != "/var/cache/matrix" {
		t.Errorf("CacheDir() = %q, %v", d, err)
	}
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := CacheDir(); err != nil || d != "/xdg/gopatrol-matrix" {
		t.Errorf("CacheDir() = %q, %v; want /xdg/gopatrol-matrix", d, err)
	}
}
