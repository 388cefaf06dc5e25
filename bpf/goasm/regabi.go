package goasm

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// CheckRegABIPrologue looks in the first instructions of code for the
// compare of the stack pointer (or RSP-framesize in R12) with
// g.stackguard0 at 16(R14): the prologue of a Go function compiled for the
// register ABI (ABIInternal), which keeps g in R14 and returns results in
// RAX, RBX, ...
func CheckRegABIPrologue(code []byte) error {
	for pc, i := 0, 0; i < 4 && pc < len(code); i++ {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			return fmt.Errorf("disassembling the prologue at +%#x: %v", pc, err)
		}
		if inst.Op == x86asm.CMP {
			for _, a := range inst.Args {
				if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.R14 && m.Disp == 16 {
					return nil
				}
			}
		}
		pc += inst.Len
	}
	return errors.New("no stack-bound check against g in r14 in its prologue")
}

// Returns disassembles the whole of code and lists the offset of every RET.
// Every byte must decode: a function whose end cannot be read may hide a
// RET, and a probe that misses one leaves a handshake open forever. Only
// the one-byte form (C3) is accepted, the one Go emits.
func Returns(code []byte) ([]uint64, error) {
	insts, pcs, err := decode(code, false)
	if err != nil {
		return nil, err
	}
	var rets []uint64
	for i, inst := range insts {
		if inst.Op != x86asm.RET {
			continue
		}
		pc := pcs[i]
		if code[pc] != 0xc3 || inst.Len != 1 {
			return nil, fmt.Errorf("unexpected return form % x at +%#x", code[pc:pc+inst.Len], pc)
		}
		rets = append(rets, uint64(pc))
	}
	if len(rets) == 0 {
		return nil, errors.New("no RET instruction")
	}
	return rets, nil
}
