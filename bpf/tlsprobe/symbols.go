package tlsprobe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/bpf/goasm"
	"github.com/gopatrol/gopatrol/bpf/goelf"
)

// HandshakeSymbol is the Go function whose entry and returns bracket one
// client handshake. It is chosen over (*Conn).handshakeContext because
// handshakeContext runs on every Read and Write (its fast path returns nil
// once the handshake is done, which would count as a handshake each time) and
// serves server handshakes too; clientHandshake runs exactly once per client
// handshake, is only ever called through the handshakeFn func value (so it is
// never inlined) and returns the handshake's error.
const HandshakeSymbol = "crypto/tls.(*Conn).clientHandshake"

// AlertSymbol is where crypto/tls sends every alert, handshake failures
// included. Its argument is the alert description; only its entry is probed.
const AlertSymbol = "crypto/tls.(*Conn).sendAlertLocked"

// ErrRefused wraps every reason not to attach to a Go binary: probing a
// function that was not resolved exactly could corrupt the process.
var ErrRefused = errors.New("refusing to probe Go crypto/tls")

// GoFunc is a function of a Go binary resolved for uprobes.
type GoFunc struct {
	Name string
	// Address is the virtual address from the symbol table.
	Address uint64
	// FileOffset is where the function's first instruction is in the file;
	// uprobes are placed by file offset.
	FileOffset uint64
	Size       uint64
	// Rets holds the offsets, relative to the function's start, of every RET
	// instruction in it.
	Rets []uint64
}

// GoBinary is a Go executable whose crypto/tls client handshake can be
// probed safely.
type GoBinary struct {
	Path      string
	GoVersion string
	Handshake GoFunc
	// Alert is nil when the binary has no out-of-line sendAlertLocked; the
	// alert then comes from the socket where it is plaintext (TLS 1.2).
	Alert *GoFunc
}

// FindHandshakeRETs returns the file offset of the client handshake function
// in the Go binary at path and the offsets of its RET instructions relative
// to that entry.
func FindHandshakeRETs(path string) (entry uint64, rets []uint64, err error) {
	b, err := ResolveGo(path)
	if err != nil {
		return 0, nil, err
	}
	return b.Handshake.FileOffset, b.Handshake.Rets, nil
}

// ResolveGo checks that path is an amd64 Go binary built with the register
// ABI and a symbol table, and resolves the handshake function and its RETs.
func ResolveGo(path string) (*GoBinary, error) {
	refuse := func(format string, args ...any) error {
		return goelf.Refuse(ErrRefused, path, format, args...)
	}
	f, v, err := goelf.OpenGo(path, ErrRefused)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkGoVersion(v); err != nil {
		return nil, refuse("%v", err)
	}
	fns, err := f.Funcs(HandshakeSymbol, AlertSymbol)
	if errors.Is(err, goelf.ErrNoSymbols) {
		return nil, refuse("%v; not a Go binary as built by the go command", err)
	}
	if err != nil {
		return nil, refuse("%v", err)
	}
	hs := fns[HandshakeSymbol]
	if hs == nil {
		return nil, refuse("symbol %s not found (the binary does not use crypto/tls as a client)", HandshakeSymbol)
	}
	b := &GoBinary{Path: path, GoVersion: v}
	fn, err := resolveFunc(hs, true)
	if err != nil {
		return nil, refuse("%v", err)
	}
	b.Handshake = *fn
	if alert := fns[AlertSymbol]; alert != nil {
		// Without it, only plaintext alerts are seen: not a reason to refuse.
		if fn, err := resolveFunc(alert, false); err == nil {
			b.Alert = fn
		}
	}
	return b, nil
}

// checkGoVersion accepts Go 1.17 and later: the register ABI on amd64, which
// puts g in r14 and results in RAX/RBX, started with 1.17.
func checkGoVersion(v string) error {
	s, ok := strings.CutPrefix(v, "go")
	if !ok {
		return fmt.Errorf("unknown Go version %q", v)
	}
	major, rest, _ := strings.Cut(s, ".")
	minor := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i]
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("unknown Go version %q", v)
	}
	if ma != 1 || mi < 17 {
		return fmt.Errorf("built with %s, before the register ABI (go1.17); its handshake results cannot be read", v)
	}
	return nil
}

// resolveFunc checks that sym's prologue is Go's stack-bound check against
// g in r14, which shows the body uses the register ABI (ABIInternal) that
// the probes assume. With wantRets it disassembles the whole function and
// collects its RET offsets.
func resolveFunc(sym *goelf.Func, wantRets bool) (*GoFunc, error) {
	fn := &GoFunc{Name: sym.Name, Address: sym.Address, FileOffset: sym.FileOffset, Size: uint64(len(sym.Code))}
	if err := goasm.CheckRegABIPrologue(sym.Code); err != nil {
		return nil, fmt.Errorf("%s does not look like a Go register-ABI function: %v", sym.Name, err)
	}
	if !wantRets {
		return fn, nil
	}
	rets, err := goasm.Returns(sym.Code)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", sym.Name, err)
	}
	fn.Rets = rets
	return fn, nil
}
