package goasm

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/gopatrol/gopatrol/bpf/goelf"
)

// TestErrorBranches: only the exact sequence is accepted; anything that
// would make the probe read a changed RAX is refused.
func TestErrorBranches(t *testing.T) {
	const (
		syscallOp = "\x0f\x05"
		cmp       = "\x48\x3d\x01\xf0\xff\xff" // CMP RAX, $-4095
		jbe       = "\x76\x15"
		neg       = "\x48\xf7\xd8"
		ret       = "\xc3"
	)
	tests := []struct {
		name string
		code string
		want []uint64
		err  string
	}{
		{"go1.19 and later", syscallOp + cmp + jbe + neg + ret, []uint64{10}, ""},
		{"store first (old syscall package)", syscallOp + cmp + jbe + "\x48\xc7\x44\x24\x38\xff\xff\xff\xff" + neg + ret, []uint64{10}, ""},
		{"no syscall", neg + ret, nil, ""},
		{"other compare", syscallOp + "\x48\x3d\x00\xf0\xff\xff" + jbe + neg + ret, nil, "not CMP RAX, $-4095"},
		{"other jump", syscallOp + cmp + "\x74\x15" + neg + ret, nil, "not JBE"},
		{"RAX overwritten", syscallOp + cmp + jbe + "\x48\xc7\xc0\xff\xff\xff\xff" + ret, nil, "changes RAX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ErrorBranches([]byte(tt.code))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ErrorBranches = %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
				t.Fatalf("ErrorBranches = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestCheckRegABIPrologue(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		ok   bool
	}{
		// CMP RSP, 0x10(R14); JBE
		{"small frame", []byte{0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0, 0, 0, 0}, true},
		// LEA R12, -0x1f0(RSP); CMP R12, 0x10(R14)
		{"big frame", []byte{0x4c, 0x8d, 0xa4, 0x24, 0x10, 0xfe, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10}, true},
		// PUSH RBP; MOV RBP, RSP: a C function
		{"C prologue", []byte{0x55, 0x48, 0x89, 0xe5, 0xc3}, false},
		// four NOPs, then the check: too late to be the prologue
		{"check after four instructions", []byte{0x90, 0x90, 0x90, 0x90, 0x49, 0x3b, 0x66, 0x10}, false},
		{"garbage", []byte{0xff, 0xff}, false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		if err := CheckRegABIPrologue(tt.code); (err == nil) != tt.ok {
			t.Errorf("%s: CheckRegABIPrologue = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestReturns(t *testing.T) {
	tests := []struct {
		name string
		code string
		want []uint64
		err  string
	}{
		// MOV RAX, RBX; RET; XOR EAX, EAX; RET
		{"two returns", "\x48\x89\xd8\xc3\x31\xc0\xc3", []uint64{3, 6}, ""},
		{"padding decodes as INT3", "\xc3\xcc\xcc", []uint64{0}, ""},
		{"RET imm16", "\xc2\x08\x00", nil, "unexpected return form"},
		{"no return", "\x90\x90", nil, "no RET"},
		{"undecodable tail", "\xc3\x06", nil, "disassembling at +0x1"},
		{"truncated tail", "\xc3\x0f", nil, "truncated instruction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Returns([]byte(tt.code))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Returns = %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Returns = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// goCommand is the real go command of the toolchain running the tests.
func goCommand(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		tb.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
}

// realFuncs reads the named functions from the real go command: the code
// this package exists to read, and the fuzzers' seeds.
func realFuncs(tb testing.TB, names ...string) map[string]*goelf.Func {
	tb.Helper()
	f, err := goelf.Open(goCommand(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fns, err := f.Funcs(names...)
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range names {
		if fns[n] == nil {
			tb.Fatalf("%s not found in %s", n, f.Path)
		}
	}
	return fns
}

const (
	syscall6  = "internal/runtime/syscall/linux.Syscall6"
	handshake = "crypto/tls.(*Conn).clientHandshake"
	alert     = "crypto/tls.(*Conn).sendAlertLocked"
)

// TestSyscallErrorSites: the real go command has one site, a NEG RAX
// right after the SYSCALL; CMP; JBE, in the go1.26 raw syscall function.
func TestSyscallErrorSites(t *testing.T) {
	f, err := goelf.Open(goCommand(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := f.GoVersion()
	if err != nil {
		t.Fatal(err)
	}
	sites, err := SyscallErrorSites(f, v)
	if err != nil {
		t.Fatal(err)
	}
	fn := realFuncs(t, syscall6)[syscall6]
	if len(sites) != 1 || sites[0].Func != syscall6 || sites[0].FuncOffset != fn.FileOffset {
		t.Fatalf("sites %+v, want one in %s at file offset %#x", sites, syscall6, fn.FileOffset)
	}
	if at := fn.Code[sites[0].Offset:]; len(at) < 3 || string(at[:3]) != "\x48\xf7\xd8" {
		t.Errorf("site +%#x starts with % x, want NEG RAX", sites[0].Offset, at[:min(3, len(at))])
	}
}

// TestReturnsRealHandshake: every RET Returns finds in the real
// clientHandshake is a C3 on an instruction boundary, and it finds some.
func TestReturnsRealHandshake(t *testing.T) {
	fn := realFuncs(t, handshake)[handshake]
	if err := CheckRegABIPrologue(fn.Code); err != nil {
		t.Fatalf("%s: %v", handshake, err)
	}
	rets, err := Returns(fn.Code)
	if err != nil || len(rets) == 0 {
		t.Fatalf("Returns(%s) = %v, %v", handshake, rets, err)
	}
	checkBoundaries(t, fn.Code, rets)
}

// checkBoundaries fails unless every offset is the start of an
// instruction, decoding from the first byte, and they increase.
func checkBoundaries(t *testing.T, code []byte, offs []uint64) {
	t.Helper()
	if !slices.IsSorted(offs) {
		t.Fatalf("offsets %v not increasing", offs)
	}
	pc := 0
	for _, o := range offs {
		for uint64(pc) < o {
			inst, err := x86asm.Decode(code[pc:], 64)
			if err != nil {
				t.Fatalf("offset %#x: code does not decode at +%#x before it: %v", o, pc, err)
			}
			pc += inst.Len
		}
		if uint64(pc) != o {
			t.Fatalf("offset %#x is inside the instruction that ends at +%#x", o, pc)
		}
	}
}

// FuzzErrorBranches: on any bytes, ErrorBranches neither panics nor returns
// an offset that is not an instruction boundary right after a SYSCALL;
// CMP; JBE. Seeds: the real go command's raw syscall function and the
// table cases.
func FuzzErrorBranches(f *testing.F) {
	f.Add(realFuncs(f, syscall6)[syscall6].Code)
	f.Add([]byte("\x0f\x05\x48\x3d\x01\xf0\xff\xff\x76\x15\x48\xf7\xd8\xc3"))
	f.Add([]byte("\x0f\x05\x48\x3d\x01\xf0\xff\xff\x76\x15\x48\xc7\x44\x24\x38\xff\xff\xff\xff\xc3\xff"))
	f.Add([]byte("\x0f\x05"))
	f.Fuzz(func(t *testing.T, code []byte) {
		offs, err := ErrorBranches(code)
		if err != nil {
			return
		}
		checkBoundaries(t, code, offs)
		// The instructions before each site are SYSCALL; CMP; JBE, whatever
		// their encoded lengths (a JBE may carry a REX prefix).
		insts, pcs, err := decode(code, true)
		if err != nil {
			t.Fatalf("ErrorBranches accepted code that does not decode: %v", err)
		}
		for _, o := range offs {
			i := slices.Index(pcs, int(o))
			if i < 3 || insts[i-3].Op != x86asm.SYSCALL || insts[i-2].Op != x86asm.CMP || insts[i-1].Op != x86asm.JBE {
				t.Fatalf("site +%#x does not follow a SYSCALL; CMP; JBE: % x", o, code[max(0, int(o)-16):o])
			}
		}
	})
}

// FuzzReturns: on any bytes, Returns and CheckRegABIPrologue neither panic
// nor return an offset that is not a C3 on an instruction boundary. Seeds:
// the real go command's crypto/tls alert function and the first KiB of its
// client handshake (the whole of it, 10 KiB, makes each minimization of a
// new input take a minute).
func FuzzReturns(f *testing.F) {
	fns := realFuncs(f, handshake, alert)
	f.Add(fns[alert].Code)
	f.Add(fns[handshake].Code[:1024])
	f.Add([]byte("\x49\x3b\x66\x10\x48\x89\xd8\xc3\x31\xc0\xc3"))
	f.Add([]byte("\xc2\x08\x00"))
	f.Fuzz(func(t *testing.T, code []byte) {
		_ = CheckRegABIPrologue(code)
		rets, err := Returns(code)
		if err != nil {
			return
		}
		checkBoundaries(t, code, rets)
		for _, r := range rets {
			if code[r] != 0xc3 {
				t.Fatalf("RET at +%#x is % x", r, code[r])
			}
		}
	})
}
