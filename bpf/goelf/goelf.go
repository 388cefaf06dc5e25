package goelf

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNoSymbols means the executable has neither an ELF symbol table nor
// Go's function table (.gopclntab): functions cannot be found by name.
var ErrNoSymbols = errors.New("no symbol table and no Go function table")

// File is an open amd64 ELF executable.
type File struct {
	Path string
	r    io.ReaderAt
	c    io.Closer // nil for NewFile
	elf  *elf.File
	syms []elf.Symbol
}

// Func is a function's code and where it lies.
type Func struct {
	Name string
	// Address is the virtual address from the symbol table.
	Address uint64
	// FileOffset is where the first instruction is in the file; uprobes
	// are placed by file offset.
	FileOffset uint64
	Code       []byte
}

// Open opens path and checks it is an x86-64 ELF file.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(path, osf)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.c = osf
	return f, nil
}

// NewFile reads the executable named path from r, which must stay
// readable until the File is no longer used; Close does not close it.
func NewFile(path string, r io.ReaderAt) (*File, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF executable (%v)", err)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("machine is %v; the probes read amd64 registers only", f.Machine)
	}
	return &File{Path: path, r: r, elf: f}, nil
}

// OpenGo opens the Go executable at path and reads its Go version. Every
// error wraps refused, the caller's reason not to probe: a missing or
// unreadable file as it is, anything else through Refuse.
func OpenGo(path string, refused error) (*File, string, error) {
	f, err := Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, "", fmt.Errorf("%w: %w", refused, err)
		}
		return nil, "", Refuse(refused, path, "%v", err)
	}
	v, err := f.GoVersion()
	if err != nil {
		f.Close()
		return nil, "", Refuse(refused, path, "%v", err)
	}
	return f, v, nil
}

// Refuse is the error of a binary not probed: "<refused> in <path>: why".
func Refuse(refused error, path, format string, args ...any) error {
	return fmt.Errorf("%w in %s: %s", refused, path, fmt.Sprintf(format, args...))
}

// Close closes the file opened by Open.
func (f *File) Close() error {
	if f.c == nil {
		return nil
	}
	return f.c.Close()
}

// GoVersion is the Go release the executable was built with, from its build
// information; an error means it is not a Go executable.
func (f *File) GoVersion() (string, error) {
	info, err := buildinfo.Read(f.r)
	if err != nil {
		return "", fmt.Errorf("no Go build information (%v); not a Go binary", err)
	}
	return info.GoVersion, nil
}

// Funcs resolves the named functions, in one pass over the symbol table.
// A name that is absent is absent from the result; a symbol that is present
// but is not a sized function inside an executable section is an error.
//
// A Go binary built with -ldflags=-s (go test's are) has no ELF symbol
// table, but always Go's own function table, which the runtime needs for
// stack traces: the functions are then read from there.
func (f *File) Funcs(names ...string) (map[string]*Func, error) {
	if f.syms == nil {
		syms, err := f.elf.Symbols()
		if errors.Is(err, elf.ErrNoSymbols) {
			syms, err = f.pclntabSymbols()
		}
		if err != nil {
			return nil, err
		}
		f.syms = syms
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]*Func, len(names))
	for i := range f.syms {
		sym := &f.syms[i]
		if !want[sym.Name] || out[sym.Name] != nil {
			continue
		}
		fn, err := f.resolve(sym)
		if err != nil {
			return nil, err
		}
		out[sym.Name] = fn
	}
	return out, nil
}

// pclntabSymbols lists the functions of Go's function table as ELF symbols
// of the section that holds them.
func (f *File) pclntabSymbols() ([]elf.Symbol, error) {
	pcln, text := f.elf.Section(".gopclntab"), f.elf.Section(".text")
	if pcln == nil || text == nil {
		return nil, ErrNoSymbols
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .gopclntab: %v", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("parsing .gopclntab: %v", err)
	}
	var idx elf.SectionIndex
	for i, s := range f.elf.Sections {
		if s == text {
			idx = elf.SectionIndex(i)
		}
	}
	syms := make([]elf.Symbol, 0, len(tab.Funcs))
	for _, fn := range tab.Funcs {
		syms = append(syms, elf.Symbol{
			Name: fn.Name, Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC),
			Section: idx, Value: fn.Entry, Size: fn.End - fn.Entry,
		})
	}
	return syms, nil
}

func (f *File) resolve(sym *elf.Symbol) (*Func, error) {
	if elf.ST_TYPE(sym.Info) != elf.STT_FUNC || sym.Size == 0 {
		return nil, fmt.Errorf("symbol %s is not a sized function", sym.Name)
	}
	if int(sym.Section) >= len(f.elf.Sections) {
		return nil, fmt.Errorf("symbol %s has no section", sym.Name)
	}
	sec := f.elf.Sections[sym.Section]
	if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 {
		return nil, fmt.Errorf("symbol %s is in non-code section %s", sym.Name, sec.Name)
	}
	if sym.Value < sec.Addr || sym.Value-sec.Addr > sec.Size || sym.Size > sec.Size-(sym.Value-sec.Addr) {
		return nil, fmt.Errorf("symbol %s [%#x, +%#x) lies outside section %s", sym.Name, sym.Value, sym.Size, sec.Name)
	}
	if sym.Size > maxFuncSize {
		return nil, fmt.Errorf("symbol %s is %d bytes, more than the %d a function may have here", sym.Name, sym.Size, maxFuncSize)
	}
	off, err := f.fileOffset(sym.Value, sym.Size)
	if err != nil {
		return nil, fmt.Errorf("symbol %s: %v", sym.Name, err)
	}
	// The code is read where the kernel will place the probe, by file
	// offset, and must be what the section holds: a file whose section
	// and segment headers disagree would have the probe land on bytes
	// that were never disassembled.
	code := make([]byte, sym.Size)
	if _, err := f.r.ReadAt(code, int64(off)); err != nil {
		return nil, fmt.Errorf("reading %s at file offset %#x: %v", sym.Name, off, err)
	}
	inSec := make([]byte, sym.Size)
	if _, err := sec.ReadAt(inSec, int64(sym.Value-sec.Addr)); err != nil || !bytes.Equal(code, inSec) {
		return nil, fmt.Errorf("symbol %s: section %s and the executable segment disagree on its bytes", sym.Name, sec.Name)
	}
	return &Func{Name: sym.Name, Address: sym.Value, FileOffset: off, Code: code}, nil
}

// maxFuncSize bounds the memory one symbol can make Funcs allocate: the
// largest function of the go command is about 100 KiB.
const maxFuncSize = 16 << 20

// fileOffset maps the code [addr, addr+size) to its offset in the file
// through the loadable executable segment whose file bytes hold all of it,
// as the kernel maps uprobe offsets.
func (f *File) fileOffset(addr, size uint64) (uint64, error) {
	for _, p := range f.elf.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr-p.Vaddr < p.Filesz && size <= p.Filesz-(addr-p.Vaddr) {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("code [%#x, +%#x) is in no executable segment's file bytes", addr, size)
}
