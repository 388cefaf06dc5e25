package bpf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/gopatrol/gopatrol/bpf/goasm"
	"github.com/gopatrol/gopatrol/bpf/goelf"
)

// ErrNotProbeable wraps every reason a binary gets no syscall-error probe:
// a uprobe placed on anything but the exact instruction could corrupt the
// process, so a binary that does not match what is expected is refused.
var ErrNotProbeable = errors.New("no syscall-error probe")

// GoTool is a Go executable whose failing syscalls the sensor observes.
type GoTool struct {
	Path      string            `json:"path"`
	GoVersion string            `json:"go_version"`
	Sites     []goasm.ErrorSite `json:"sites"`
}

// ResolveGoTool finds the error branches of the raw syscall functions of
// the Go executable at path (goasm.SyscallErrorSites).
func ResolveGoTool(path string) (*GoTool, error) {
	refuse := func(format string, args ...any) error {
		return goelf.Refuse(ErrNotProbeable, path, format, args...)
	}
	f, v, err := goelf.OpenGo(path, ErrNotProbeable)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sites, err := goasm.SyscallErrorSites(f, v)
	if errors.Is(err, goelf.ErrNoSymbols) {
		return nil, refuse("%v; its file failures are seen only with Config.Syscalls", err)
	}
	if err != nil {
		return nil, refuse("%v", err)
	}
	return &GoTool{Path: path, GoVersion: v, Sites: sites}, nil
}

// DefaultGoTools is the go command found on PATH, resolved through
// symlinks, and the tools of its GOROOT (pkg/tool/GOOS_GOARCH: compile,
// link, asm, cgo, vet, ...), which do most of a build's file work.
func DefaultGoTools() []string {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil
	}
	return ToolchainBinaries(goCmd)
}

// ToolchainBinaries is goCmd and the tools of the GOROOT it belongs to.
func ToolchainBinaries(goCmd string) []string {
	if r, err := filepath.EvalSymlinks(goCmd); err == nil {
		goCmd = r
	}
	out := []string{goCmd}
	toolDir := filepath.Join(filepath.Dir(filepath.Dir(goCmd)), "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH)
	ents, err := os.ReadDir(toolDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(toolDir, e.Name()))
		}
	}
	return out
}

// isToolchainBinary says whether path, just executed in a tree, is a go
// command or a GOROOT tool: the binaries worth probing on first sight.
func isToolchainBinary(path string, goNames []string) bool {
	if !filepath.IsAbs(path) {
		return false
	}
	for _, n := range goNames {
		if filepath.Base(path) == n {
			return true
		}
	}
	dir := filepath.Dir(path)
	return filepath.Base(filepath.Dir(dir)) == "tool" && filepath.Base(filepath.Dir(filepath.Dir(dir))) == "pkg"
}
