package goasm

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/gopatrol/gopatrol/bpf/goelf"
)

// RawSyscallFuncs are where a Go program's syscall package executes the
// SYSCALL instruction: one function per release line since go1.19, and the
// four assembly entry points of the syscall package before it.
var RawSyscallFuncs = []string{
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

// SyscallErrorSites finds the error branches of the raw syscall functions
// (RawSyscallFuncs) of f, built with Go version goVersion (named in the
// error when none is found). An error says why f must not be probed; it
// wraps goelf.ErrNoSymbols when f has no table to find functions in.
func SyscallErrorSites(f *goelf.File, goVersion string) ([]ErrorSite, error) {
	fns, err := f.Funcs(RawSyscallFuncs...)
	if err != nil {
		return nil, err
	}
	var sites []ErrorSite
	for _, name := range RawSyscallFuncs {
		fn := fns[name]
		if fn == nil {
			continue
		}
		offs, err := ErrorBranches(fn.Code)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, o := range offs {
			sites = append(sites, ErrorSite{Func: name, FuncOffset: fn.FileOffset, Offset: o})
		}
	}
	if len(sites) == 0 {
		return nil, fmt.Errorf("built with %s: none of %s has the SYSCALL; CMPQ AX, $-4095; JLS sequence", goVersion, strings.Join(RawSyscallFuncs, ", "))
	}
	return sites, nil
}

// ErrorBranches disassembles code and returns the offset of the instruction
// after each "SYSCALL; CMP RAX, $-4095; JBE ok" sequence: the error branch,
// entered with -errno in RAX. The first instruction there must be NEG RAX
// (go1.19 and later) or a store that leaves RAX alone (the syscall package's
// assembly before), so that a probe there reads an unchanged RAX.
func ErrorBranches(code []byte) ([]uint64, error) {
	insts, pcs, err := decode(code, true)
	if err != nil {
		return nil, err
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

// decode decodes code from its first byte to its end and returns the
// instructions with their offsets. With padded, bytes that do not decode
// after a RET end the code: they are the padding between functions.
func decode(code []byte, padded bool) ([]x86asm.Inst, []int, error) {
	var insts []x86asm.Inst
	var pcs []int
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err == nil && inst.Op == 0 {
			// x86asm returns a lone prefix at the end of the bytes (a
			// truncated instruction) as an instruction without opcode.
			err = errors.New("truncated instruction")
		}
		if err != nil {
			// Padding after the last RET is not code.
			if padded && len(insts) > 0 && insts[len(insts)-1].Op == x86asm.RET {
				break
			}
			return nil, nil, fmt.Errorf("disassembling at +%#x: %v", pc, err)
		}
		insts = append(insts, inst)
		pcs = append(pcs, pc)
		pc += inst.Len
	}
	return insts, pcs, nil
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
