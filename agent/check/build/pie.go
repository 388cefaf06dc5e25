package build

import (
	"context"
	"debug/elf"
	"fmt"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// pieProgram reads its own ELF header and prints its type and where it was
// loaded, then runs itself once more for a second load address: under ASLR
// the two differ. It reads the header itself because the first `go run`
// deletes the executable when the program exits. It imports only os and
// strconv: every dependency costs `go run` time even when it is cached. It is run with `go run`, which caches the linked executable
// (Go 1.24 and later), so a warm run costs tens of milliseconds, not a link.
const pieProgram = `package main

import (
	"os"
	"strconv"
	"unsafe"
)

var anchor byte

func main() {
	addr := strconv.FormatUint(uint64(uintptr(unsafe.Pointer(&anchor))), 16)
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		os.Stdout.WriteString(addr + "\n")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fail("executable", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		fail("open executable", err)
	}
	var hdr [18]byte
	_, err = f.ReadAt(hdr[:], 0)
	f.Close()
	if err != nil {
		fail("read ELF header", err)
	}
	if string(hdr[:4]) != "\x7fELF" {
		fail("read ELF header", os.ErrInvalid)
	}
	typ := uint16(hdr[16]) | uint16(hdr[17])<<8
	if hdr[5] == 2 { // ELFDATA2MSB
		typ = uint16(hdr[16])<<8 | uint16(hdr[17])
	}
	r, w, err := os.Pipe()
	if err != nil {
		fail("pipe", err)
	}
	p, err := os.StartProcess(exe, []string{exe, "-child"}, &os.ProcAttr{Files: []*os.File{nil, w, os.Stderr}})
	w.Close()
	if err != nil {
		fail("rerun", err)
	}
	var buf [64]byte
	n, _ := r.Read(buf[:])
	p.Wait()
	os.Stdout.WriteString("exe=" + exe + "\ntype=" + strconv.Itoa(int(typ)) + "\naddr=0x" + addr + "\naddr2=0x" + string(buf[:n]))
}

func fail(what string, err error) {
	os.Stderr.WriteString(what + ": " + err.Error() + "\n")
	os.Exit(1)
}
`

// randomizeVASpace is the kernel's ASLR switch.
const randomizeVASpace = "/proc/sys/kernel/randomize_va_space"

// pieCheck builds the probe with -buildmode=buildmode. The catalogue uses
// "pie"; tests pass "exe" to see the check fail on a real non-PIE binary.
func pieCheck(buildmode string) check.Check {
	return check.Check{
		ID:     "build.pie-aslr",
		Title:  "-buildmode=pie builds are ELF ET_DYN and the kernel randomizes them",
		Source: "4.3",
		// A release's first PIE build compiles the standard library.
		FillsCache: true,
		Proves:     true,
		Run: func(ctx context.Context, env *check.Env) check.Result {
			return runPIE(ctx, env, buildmode)
		},
	}
}

func runPIE(ctx context.Context, env *check.Env, buildmode string) check.Result {
	aslr, aslrErr := env.Target.ReadFile(randomizeVASpace)
	s, err := newScratch(env, "gopatrol-pie-")
	if err != nil {
		return check.Errorf("%v", err)
	}
	defer s.Remove()
	if err := s.Write(map[string]string{"main.go": pieProgram}); err != nil {
		return check.Errorf("%v", err)
	}
	// -trimpath keeps the scratch directory's name out of the action ID,
	// so that the cached executable of the last run is found again.
	// GOFLAGS is cleared because flags meant for the user's module (say
	// -mod=vendor) break a build outside any module; env.config reports it.
	out, err := s.Env.Go(ctx, []string{"GOWORK=off", "GOFLAGS="}, "run", "-trimpath", "-buildmode="+buildmode, "main.go")
	if err != nil {
		return check.Failf("go run -buildmode=%s of a minimal program failed", buildmode).
			With("error", err.Error()).
			WithFix("run `go run -buildmode=%s main.go` on <a hello-world program> to see the full error; -buildmode=pie needs a linker that supports PIE", buildmode)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			fields[k] = v
		}
	}
	exe := fields["exe"]
	if exe == "" {
		return check.Errorf("the PIE probe printed no executable path").With("output", strings.TrimSpace(string(out)))
	}
	n, err := strconv.Atoi(fields["type"])
	if err != nil {
		return check.Errorf("the PIE probe printed no ELF type").With("output", strings.TrimSpace(string(out)))
	}
	typ := elf.Type(n)
	// A warm run executes go's cached copy, which outlives the run: read
	// it here too, so the verdict does not rest on the probe's word alone.
	if t, err := elfType(env.Target.Path(exe)); err == nil && t != typ {
		return check.Errorf("the PIE probe reported %s but its executable is %s", typ, t).With("executable", exe)
	}
	aslrValue := strings.TrimSpace(string(aslr))
	if aslrErr != nil {
		aslrValue = ""
	}
	res := pieVerdict(buildmode, typ, aslrValue, fields["addr"], fields["addr2"])
	res = res.With("executable", exe).With("elf_type", typ.String()).With("buildmode", buildmode)
	if aslrErr != nil {
		res = res.With("randomize_va_space_error", aslrErr.Error())
	} else {
		res = res.With("randomize_va_space", aslrValue)
	}
	if fields["addr"] != "" {
		res = res.With("load_addresses", fields["addr"]+" "+fields["addr2"])
	}
	return res
}

// elfType reads the ELF header's e_type.
func elfType(path string) (elf.Type, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read ELF header of %s: %w", path, err)
	}
	defer f.Close()
	return f.Type, nil
}

// pieVerdict decides from the ELF type, the value of randomize_va_space
// ("" when unreadable) and two load addresses of the same executable.
func pieVerdict(buildmode string, typ elf.Type, aslr, addr1, addr2 string) check.Result {
	if typ != elf.ET_DYN {
		return check.Failf("a -buildmode=%s build is %s, not ET_DYN: it is not position independent and always loads at the same address", buildmode, typ).
			WithFix("build <your production binaries> with `go build -buildmode=pie`; if that still gives ET_EXEC, look for -static or -no-pie in CGO_LDFLAGS and -extldflags")
	}
	sysctlFix := "sysctl -w kernel.randomize_va_space=2 && echo kernel.randomize_va_space=2 > /etc/sysctl.d/50-aslr.conf"
	switch aslr {
	case "2":
	case "1":
		return check.Warnf("randomize_va_space is 1: stack, mmap, vDSO and PIE base are randomized but the brk heap is not").
			WithFix("%s", sysctlFix)
	case "0":
		return check.Failf("randomize_va_space is 0: the kernel randomizes nothing, so PIE binaries load at a fixed address and PIE buys nothing").
			WithFix("%s", sysctlFix)
	case "":
		return check.Warnf("PIE build is ET_DYN, but %s cannot be read, so whether the kernel randomizes it is unknown", randomizeVASpace).
			WithFix("cat %s (2 is full randomization); in a container, mount the host's /proc/sys read-only", randomizeVASpace)
	default:
		return check.Warnf("randomize_va_space is %q, not one of 0, 1, 2", aslr).WithFix("%s", sysctlFix)
	}
	if addr1 != "" && addr1 == addr2 {
		return check.Warnf("randomize_va_space is 2, yet two runs of the same PIE executable loaded at the same address %s: randomization is disabled for this process tree (personality ADDR_NO_RANDOMIZE, setarch -R, or a debugger)", addr1).
			WithFix("run builds and services without `setarch -R` / ADDR_NO_RANDOMIZE; check the container runtime's personality settings")
	}
	return check.Passf("-buildmode=%s builds ET_DYN and the kernel randomizes its load address (randomize_va_space=2)", buildmode)
}
