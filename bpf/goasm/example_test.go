package goasm_test

import (
	"fmt"

	"github.com/gopatrol/gopatrol/bpf/goasm"
)

// ExampleErrorBranches finds the probe site in the raw syscall sequence
// every Go binary since go1.19 has: the NEG RAX after the JBE, where RAX
// still holds -errno.
func ExampleErrorBranches() {
	code := []byte{
		0x0f, 0x05, // SYSCALL
		0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // CMP RAX, $-4095
		0x76, 0x15, // JBE ok
		0x48, 0xf7, 0xd8, // NEG RAX  <- the error branch
		0xc3, // RET
	}
	offs, err := goasm.ErrorBranches(code)
	fmt.Println(offs, err)

	// A branch that overwrites RAX first is refused: a probe there would
	// read the wrong value.
	code[10], code[11], code[12] = 0x31, 0xc0, 0x90 // XOR EAX, EAX; NOP
	_, err = goasm.ErrorBranches(code)
	fmt.Println(err)
	// Output:
	// [10] <nil>
	// error branch at +0xa starts with XOR EAX, EAX, which changes RAX
}
