package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/gopatrol/gopatrol/bpf/goelf"
)

// ErrNotProbeable wraps every reason a binary gets no syscall-error probe:
// a uprobe placed on anything but the exact instruction could corrupt the
// process, so a binary that does not match what is expected is refused.
var ErrNotProbeable = errors.New("no syscall-error probe")

// rawSyscallFuncs are where a Go program's syscall package executes the
// SYSCALL instruction: one function per release line since go1.19, and the
// four assembly entry points of the syscall package before it.
var rawSyscallFuncs = []string{
	"internal/runtime/syscall/linux.Syscall6", // go1.26
	"internal/runtime/syscall.Syscall6",       // go1.23–1.25
	"runtime/internal/syscall.Syscall6",       // go1.19–1.22
	"syscall.Syscall", "syscall.Syscall6", "syscall.RawSyscall", "syscall.RawSyscall6",
}

// ErrorSite is the first instruction of a raw syscall function's error
// branch, where the sensor's uprobe reads -errno from RAX.
type ErrorSite struct {
	Func string `json:"func"`
	// FuncOffset is the function's offset in the file; Offset is the
	// instruction's, relative to it.
	FuncOffset uint64 `json:"func_offset"`
	Offset     uint64 `json:"offset"`
}

// GoTool is a Go executable whose failing syscalls the sensor observes.
type GoTool struct {
	Path      string      `json:"path"`
	GoVersion string      `json:"go_version"`
	Sites     []ErrorSite `json:"sites"`
}

// ResolveGoTool finds the error branches of the raw syscall functions of
// the Go executable at path.
func ResolveGoTool(path string) (*GoTool, error) {
	refuse := func(format string, args ...any) error {
		return goelf.Refuse(ErrNotProbeable, path, format, args...)
	}
	f, v, err := goelf.OpenGo(path, ErrNotProbeable)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fns, err := f.Funcs(rawSyscallFuncs...)
	if errors.Is(err, goelf.ErrNoSymbols) {
		return nil, refuse("%v; its file failures are seen only with Config.Syscalls", err)
	}
	if err != nil {
		return nil, refuse("%v", err)
	}
	t := &GoTool{Path: path, GoVersion: v}
	for _, name := range rawSyscallFuncs {
		fn := fns[name]
		if fn == nil {
			continue
		}
		offs, err := errorBranches(fn.Code)
		if err != nil {
			return nil, refuse("%s: %v", name, err)
		}
		for _, o := range offs {
			t.Sites = append(t.Sites, ErrorSite{Func: name, FuncOffset: fn.FileOffset, Offset: o})
		}
	}
	if len(t.Sites) == 0 {
		return nil, refuse("built with %s: none of %s has the SYSCALL; CMPQ AX, $-4095; JLS sequence", v, strings.Join(rawSyscallFuncs, ", "))
	}
	return t, nil
}

// errorBranches disassembles code and returns the offset of the instruction
// after each "SYSCALL; CMP RAX, $-4095; JBE ok" sequence: the error branch,
// entered with -errno in RAX. The first instruction there must be NEG RAX
// (go1.19 and later) or a store that leaves RAX alone (the syscall package's
// assembly before), so that a probe there reads an unchanged RAX.
func errorBranches(code []byte) ([]uint64, error) {
	var insts []x86asm.Inst
	var pcs []int
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			// Padding after the last RET is not code.
			if len(insts) > 0 && insts[len(insts)-1].Op == x86asm.RET {
				break
			}
			return nil, fmt.Errorf("disassembling at +%#x: %v", pc, err)
		}
		insts = append(insts, inst)
		pcs = append(pcs, pc)
		pc += inst.Len
	}
	var offs []uint64
	for i := 0; i+3 < len(insts); i++ {
		if insts[i].Op != x86asm.SYSCALL {
			continue
		}
		cmp, jbe := insts[i+1], insts[i+2]
		if cmp.Op != x86asm.CMP || cmp.Args[0] != x86asm.RAX {
			return nil, fmt.Errorf("SYSCALL at +%#x is followed by %v, not CMP RAX, $-4095", pcs[i], cmp)
		}
		if imm, ok := cmp.Args[1].(x86asm.Imm); !ok || int64(imm) != -4095 {
			return nil, fmt.Errorf("SYSCALL at +%#x is followed by %v, not CMP RAX, $-4095", pcs[i], cmp)
		}
		if jbe.Op != x86asm.JBE {
			return nil, fmt.Errorf("CMP at +%#x is followed by %v, not JBE", pcs[i+1], jbe)
		}
		first := insts[i+3]
		if !(first.Op == x86asm.NEG && first.Args[0] == x86asm.RAX) && writesRAX(first) {
			return nil, fmt.Errorf("error branch at +%#x starts with %v, which changes RAX", pcs[i+3], first)
		}
		offs = append(offs, uint64(pcs[i+3]))
	}
	return offs, nil
}

func writesRAX(inst x86asm.Inst) bool {
	if inst.Op == x86asm.MOV {
		if r, ok := inst.Args[0].(x86asm.Reg); ok {
			return r == x86asm.RAX || r == x86asm.EAX
		}
		return false // a store to memory
	}
	return true
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
