package goelf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// probedFuncs are the functions the probes look up, and two every Go
// program has.
var probedFuncs = []string{
	"internal/runtime/syscall/linux.Syscall6", "syscall.Syscall6",
	"crypto/tls.(*Conn).clientHandshake", "crypto/tls.(*Conn).sendAlertLocked",
	"main.main", "runtime.main",
}

// goCommandsOnPath is every file named go in a PATH directory, each once.
func goCommandsOnPath(tb testing.TB) []string {
	tb.Helper()
	var out []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p, err := filepath.EvalSymlinks(filepath.Join(dir, "go"))
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	if len(out) == 0 {
		tb.Fatal("no go command on PATH")
	}
	return out
}

// checkRead reads data as the probes read an executable: open, Go
// version, the probed functions. It fails tb if every function returned
// is not exactly the file's bytes at its file offset, where the kernel
// places the probe, and returns how many functions were found.
func checkRead(tb testing.TB, data []byte) int {
	tb.Helper()
	f, err := NewFile("data", bytes.NewReader(data))
	if err != nil {
		return 0
	}
	defer f.Close()
	_, _ = f.GoVersion()
	fns, err := f.Funcs(probedFuncs...)
	if err != nil {
		return 0
	}
	for name, fn := range fns {
		end := fn.FileOffset + uint64(len(fn.Code))
		if fn.Name != name || len(fn.Code) == 0 || end < fn.FileOffset || end > uint64(len(data)) ||
			!bytes.Equal(data[fn.FileOffset:end], fn.Code) {
			tb.Fatalf("%s: %d bytes at file offset %#x are not the file's (%d bytes)", name, len(fn.Code), fn.FileOffset, len(data))
		}
	}
	return len(fns)
}

// TestReadRealExecutables: every go command on PATH, this stripped test
// binary (Go's function table) and their small copies (miniGoELF) read as
// the probes need them.
func TestReadRealExecutables(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(goCommandsOnPath(t), self) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if n := checkRead(t, data); n < 3 {
			t.Errorf("%s: %d of %v found", p, n, probedFuncs)
		}
		mini := miniGoELF(t, p)
		if n := checkRead(t, mini); n < 3 {
			t.Errorf("mini copy of %s (%d bytes): %d of %v found", p, len(mini), n, probedFuncs)
		}
		f, err := NewFile("mini", bytes.NewReader(mini))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := f.GoVersion(); err != nil || !strings.HasPrefix(v, "go1.") {
			t.Errorf("mini copy of %s: Go version %q, %v", p, v, err)
		}
	}
}

// FuzzGoExecutable: reading any bytes as an executable never panics, and
// a function it returns is always the file's bytes at its file offset.
// Seeds: small executables made of the real go commands' probed
// functions and build information (miniGoELF), and the first bytes of the
// real files. The whole files (15 MB) make a fuzzer too slow to find
// anything in seconds; TestReadRealExecutables reads them.
func FuzzGoExecutable(f *testing.F) {
	for _, p := range goCommandsOnPath(f) {
		f.Add(miniGoELF(f, p))
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:4096])
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		if data, err := os.ReadFile(sh); err == nil {
			f.Add(data[:min(len(data), 4096)])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkRead(t, data) })
}

// miniGoELF writes a small amd64 executable holding what the probes read
// from the Go executable at path: its probed functions (real code, one
// executable segment), their ELF symbols and its .go.buildinfo section. A
// few KiB instead of megabytes: a fuzz seed that mutates quickly.
func miniGoELF(tb testing.TB, path string) []byte {
	tb.Helper()
	src, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	fns, err := src.Funcs(probedFuncs...)
	if err != nil {
		tb.Fatal(err)
	}
	bi := src.elf.Section(".go.buildinfo")
	if bi == nil {
		tb.Fatalf("%s has no .go.buildinfo", path)
	}
	info, err := bi.Data()
	if err != nil {
		tb.Fatal(err)
	}

	const base, textOff = 0x400000, 0x100
	var text []byte
	type sym struct {
		name      string
		off, size uint64
	}
	var syms []sym
	for _, name := range probedFuncs { // a fixed order: the seed is deterministic
		fn := fns[name]
		if fn == nil {
			continue
		}
		for len(text)%16 != 0 {
			text = append(text, 0xcc)
		}
		syms = append(syms, sym{name, uint64(len(text)), uint64(len(fn.Code))})
		text = append(text, fn.Code...)
	}
	align := func(n, a int) int { return (n + a - 1) / a * a }
	infoOff := align(textOff+len(text), 16)
	loadEnd := infoOff + len(info)

	strtab := []byte{0}
	var symtab bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&symtab, le, elf.Sym64{})
	for _, s := range syms {
		binary.Write(&symtab, le, elf.Sym64{
			Name: uint32(len(strtab)), Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC),
			Shndx: 1, Value: base + textOff + s.off, Size: s.size,
		})
		strtab = append(strtab, s.name...)
		strtab = append(strtab, 0)
	}
	shstrtab := []byte{0}
	name := func(s string) uint32 {
		n := uint32(len(shstrtab))
		shstrtab = append(append(shstrtab, s...), 0)
		return n
	}
	symOff := align(loadEnd, 8)
	strOff := symOff + symtab.Len()
	shstrOff := strOff + len(strtab)
	sections := []elf.Section64{
		{},
		{Name: name(".text"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_EXECINSTR),
			Addr: base + textOff, Off: textOff, Size: uint64(len(text)), Addralign: 16},
		{Name: name(".go.buildinfo"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_WRITE),
			Addr: base + uint64(infoOff), Off: uint64(infoOff), Size: uint64(len(info)), Addralign: 16},
		{Name: name(".symtab"), Type: uint32(elf.SHT_SYMTAB), Off: uint64(symOff), Size: uint64(symtab.Len()),
			Link: 4, Info: 1, Addralign: 8, Entsize: 24},
		{Name: name(".strtab"), Type: uint32(elf.SHT_STRTAB), Off: uint64(strOff), Size: uint64(len(strtab)), Addralign: 1},
	}
	shstrNdx := len(sections)
	sections = append(sections, elf.Section64{Name: name(".shstrtab"), Type: uint32(elf.SHT_STRTAB), Addralign: 1})
	sections[shstrNdx].Off, sections[shstrNdx].Size = uint64(shstrOff), uint64(len(shstrtab))
	shOff := align(shstrOff+len(shstrtab), 8)

	var out bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: base + textOff, Phoff: 64, Shoff: uint64(shOff), Ehsize: 64,
		Phentsize: 56, Phnum: 1, Shentsize: 64, Shnum: uint16(len(sections)), Shstrndx: uint16(shstrNdx),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	binary.Write(&out, le, hdr)
	binary.Write(&out, le, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0, Vaddr: base, Paddr: base,
		Filesz: uint64(loadEnd), Memsz: uint64(loadEnd), Align: 0x1000,
	})
	pad := func(to int) { out.Write(make([]byte, to-out.Len())) }
	pad(textOff)
	out.Write(text)
	pad(infoOff)
	out.Write(info)
	pad(symOff)
	out.Write(symtab.Bytes())
	out.Write(strtab)
	out.Write(shstrtab)
	pad(shOff)
	for _, s := range sections {
		binary.Write(&out, le, s)
	}
	return out.Bytes()
}
