package access

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// exitCode is what the probe binary exits with, so that a zero exit of
// something else (a wrapper, binfmt_misc) is not taken for success.
const exitCode = 42

// Executable puts a tiny binary in dir (a path of the target) and runs it
// as the build user, then removes it. The binary is written by this
// process, mode 0755, because the question is whether the user can run
// what is installed there (search permission on the path, noexec mounts,
// ACLs), not whether the user can write there; Writable answers that.
func Executable(ctx context.Context, t *check.Target, dir string) error {
	hostDir := t.Path(dir)
	fail := func(op string, err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &Error{Op: op, Path: dir, User: t.UserName(), Err: err}
	}
	image, err := binaryImage()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(hostDir, ".gopatrol-probe-*")
	if err != nil {
		return fail("place a probe binary (as this process)", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(image)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o755)); err != nil {
		return fail("place a probe binary (as this process)", err)
	}
	name := filepath.Join(dir, filepath.Base(f.Name()))
	for attempt := 0; ; attempt++ {
		cmd := t.Command(ctx, name)
		// The build user may not be able to enter the target's working
		// directory; that is not what is asked here.
		cmd.Dir = "/"
		cmd.Env = []string{}
		_, err = check.Run(cmd)
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == exitCode:
			return nil
		case err == nil:
			return &Error{Op: "run a binary", Path: dir, User: t.UserName(), Err: fmt.Errorf("%s exited 0, want %d: something else ran", name, exitCode)}
		case errors.Is(err, syscall.ETXTBSY) && attempt < 5 && ctx.Err() == nil:
			// Another goroutine forked while the file was open for
			// writing and its child still holds it: wait for exec.
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		case ctx.Err() != nil:
			return fmt.Errorf("probe of %s: %w", dir, ctx.Err())
		}
		return fail("run a binary", err)
	}
}

// binaryImage is a minimal static ELF executable that exits with exitCode:
// no libc, no loader, so it runs on any target of the same architecture.
// gopatrol ships for amd64 and arm64 only.
func binaryImage() ([]byte, error) {
	var machine uint16
	var code []byte
	switch runtime.GOARCH {
	case "amd64":
		machine = 62 // EM_X86_64
		code = []byte{
			0xbf, exitCode, 0, 0, 0, // mov edi, 42
			0xb8, 231, 0, 0, 0, // mov eax, 231 (exit_group)
			0x0f, 0x05, // syscall
		}
	case "arm64":
		machine = 183                                                        // EM_AARCH64
		code = binary.LittleEndian.AppendUint32(nil, 0xd2800000|exitCode<<5) // mov x0, #42
		code = binary.LittleEndian.AppendUint32(code, 0xd2800bc8)            // mov x8, #94 (exit_group)
		code = binary.LittleEndian.AppendUint32(code, 0xd4000001)            // svc #0
	default:
		return nil, fmt.Errorf("probe: no built-in probe binary for %s", runtime.GOARCH)
	}
	return elf64(machine, code), nil
}

// elf64 wraps code in an ELF64 executable with one PT_LOAD segment.
func elf64(machine uint16, code []byte) []byte {
	const (
		base    = 0x400000
		ehsize  = 64
		phsize  = 56
		codeOff = ehsize + phsize
	)
	le := binary.LittleEndian
	b := []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */, 0 /* SysV */, 0, 0, 0, 0, 0, 0, 0, 0}
	b = le.AppendUint16(b, 2) // ET_EXEC
	b = le.AppendUint16(b, machine)
	b = le.AppendUint32(b, 1)            // EV_CURRENT
	b = le.AppendUint64(b, base+codeOff) // entry
	b = le.AppendUint64(b, ehsize)       // phoff
	b = le.AppendUint64(b, 0)            // shoff
	b = le.AppendUint32(b, 0)            // flags
	b = le.AppendUint16(b, ehsize)       // ehsize
	b = le.AppendUint16(b, phsize)       // phentsize
	b = le.AppendUint16(b, 1)            // phnum
	b = le.AppendUint16(b, 0)            // shentsize
	b = le.AppendUint16(b, 0)            // shnum
	b = le.AppendUint16(b, 0)            // shstrndx
	size := uint64(codeOff + len(code))
	b = le.AppendUint32(b, 1)    // PT_LOAD
	b = le.AppendUint32(b, 5)    // PF_R|PF_X
	b = le.AppendUint64(b, 0)    // offset
	b = le.AppendUint64(b, base) // vaddr
	b = le.AppendUint64(b, base) // paddr
	b = le.AppendUint64(b, size) // filesz
	b = le.AppendUint64(b, size) // memsz
	b = le.AppendUint64(b, 0x1000)
	return append(b, code...)
}
