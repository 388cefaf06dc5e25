package tlsprobe

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/gopatrol/gopatrol/bpf"
)

// Config says which binaries to probe.
type Config struct {
	// GoBinaries are Go executables whose client handshakes are probed;
	// uprobes attach by inode, so one attachment covers every process
	// running the file. A listed binary that cannot be probed safely makes
	// Attach fail. Default: the go command found on PATH and
	// $GOROOT/bin/go; those are skipped with a reason when refused.
	GoBinaries []string
	// LibSSL are libssl shared objects to probe; a listed one that cannot
	// be probed makes Attach fail. Default: libssl.so.3 from the dynamic
	// linker cache or the usual directories; none found, or one without
	// the SSL_* symbols, is skipped with a reason.
	LibSSL []string
	// NoLibSSL turns the libssl probes off.
	NoLibSSL bool
	// NoSocket turns off the program that looks at the first bytes of
	// every TCP send of tree processes (the tcp_sendmsg_locked tracepoint
	// of recent 6.x kernels, attached by the sensor while a Go tree is
	// alive; other processes' sends return at the tree check). Without it
	// handshakes carry no server name, address or wire alert, and other
	// libraries' ClientHellos are not seen. A kernel without the tracepoint
	// leaves it off with a warning.
	NoSocket bool
	Logger   *slog.Logger
}

// Skip is a binary that was not probed and why.
type Skip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Probe is the attached TLS probe set. It implements bpf.Extension.
type Probe struct {
	objs  tlsObjects
	links []link.Link

	// GoBinaries and LibSSL are the files probed.
	GoBinaries []*GoBinary
	LibSSL     []string
	// Skipped lists the default binaries that were not probed.
	Skipped []Skip

	sensor   *bpf.Sensor // holds the socket program while trees live
	once     sync.Once
	closeErr error
}

// Attach loads the TLS programs into the sensor's process trees and ring
// buffer, attaches them and registers the probe with s, whose Close detaches
// it. Decoded events arrive on s.Events() as *Handshake, *ClientHelloEvent
// and *AlertEvent.
func Attach(s *bpf.Sensor, cfg Config) (*Probe, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("TLS probes: built for amd64 only (Go register ABI, syscall numbers), this is %s", runtime.GOARCH)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Probe{}
	// Resolve everything before loading anything: a refusal costs nothing.
	if err := p.resolveGo(cfg.GoBinaries, log); err != nil {
		return nil, err
	}
	if !cfg.NoLibSSL {
		p.chooseLibSSL(cfg.LibSSL, log)
	}
	// The socket program needs the tcp_sendmsg_locked tracepoint: without
	// it the rest still loads, and handshakes lack the SNI.
	socket := !cfg.NoSocket
	if socket {
		if err := haveTracepoint("tcp_sendmsg_locked"); err != nil {
			socket = false
			p.Skipped = append(p.Skipped, Skip{"tcp_sendmsg_locked", err.Error()})
			log.Warn("TLS probes: no socket program; handshakes carry no server name or address", "err", err)
		}
	}
	if err := p.load(s, socket); err != nil {
		return nil, err
	}
	if err := p.attach(s, socket, len(cfg.LibSSL) > 0, log); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// resolveGo resolves the Go binaries to probe, each file once: the same
// inode probed twice would report every handshake twice. A listed binary
// that is refused is an error; a default one is skipped with the reason.
func (p *Probe) resolveGo(listed []string, log *slog.Logger) error {
	paths := listed
	if len(listed) == 0 {
		paths = defaultGoBinaries()
	}
	for _, path := range dedupeFiles(paths) {
		b, err := ResolveGo(path)
		if err != nil {
			if len(listed) > 0 {
				return fmt.Errorf("TLS probes: %w", err)
			}
			p.Skipped = append(p.Skipped, Skip{path, err.Error()})
			log.Warn("TLS probes: Go binary not probed", "path", path, "err", err)
			continue
		}
		p.GoBinaries = append(p.GoBinaries, b)
	}
	return nil
}

// chooseLibSSL sets the libssl files to probe: the listed ones, else the one
// the dynamic linker would load, if any.
func (p *Probe) chooseLibSSL(listed []string, log *slog.Logger) {
	libs := listed
	if len(listed) == 0 {
		if lib := findLibSSL(); lib != "" {
			libs = []string{lib}
		} else {
			p.Skipped = append(p.Skipped, Skip{"libssl.so.3", "not found in the dynamic linker cache or /lib, /usr/lib"})
			log.Info("TLS probes: libssl.so.3 not found; libssl handshakes are not probed")
		}
	}
	p.LibSSL = dedupeFiles(libs)
}

// load loads the programs with the sensor's shared maps, the socket
// program only when socket is set.
func (p *Probe) load(s *bpf.Sensor, socket bool) error {
	spec, err := loadTls()
	if err != nil {
		return fmt.Errorf("TLS probes: load spec: %w", err)
	}
	repl, err := s.ShareMaps(spec)
	if err != nil {
		return fmt.Errorf("TLS probes: %w", err)
	}
	if err := loadObjects(spec, &ebpf.CollectionOptions{MapReplacements: repl}, socket, &p.objs); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("TLS probes: load: %+v", ve)
		}
		return fmt.Errorf("TLS probes: load: %w", err)
	}
	return nil
}

// attach places the uprobes, hands the socket program to the sensor and
// registers p with it. A listed libssl that cannot be probed is an error
// (libExplicit); a found one is skipped with the reason.
func (p *Probe) attach(s *bpf.Sensor, socket, libExplicit bool, log *slog.Logger) error {
	for _, b := range p.GoBinaries {
		if err := p.attachGo(b); err != nil {
			return err
		}
		log.Debug("TLS probes: Go binary probed", "path", b.Path, "go", b.GoVersion, "rets", len(b.Handshake.Rets))
	}
	var probedLibs []string
	for _, lib := range p.LibSSL {
		if err := p.attachLibSSL(lib); err != nil {
			if libExplicit {
				return err
			}
			// A libssl found by looking around that lacks the symbols
			// (another build, another library) only loses libssl
			// handshakes.
			p.Skipped = append(p.Skipped, Skip{lib, err.Error()})
			log.Warn("TLS probes: libssl not probed", "path", lib, "err", err)
			continue
		}
		probedLibs = append(probedLibs, lib)
	}
	p.LibSSL = probedLibs
	// The socket program last: until now no handshake could be joined.
	// Every TCP send on the machine runs through it, so the sensor attaches
	// it only while a Go tree is alive (bpf.Config.Eager: always).
	if socket {
		if err := s.AttachWhileTrees(p.objs.TlsTcpSendmsg); err != nil {
			return fmt.Errorf("TLS probes: %w", err)
		}
		p.sensor = s
	}
	if err := s.AddExtension(p); err != nil {
		return fmt.Errorf("TLS probes: %w", err)
	}
	return nil
}

func (p *Probe) attachGo(b *GoBinary) error {
	ex, err := link.OpenExecutable(b.Path)
	if err != nil {
		return fmt.Errorf("TLS probes: open %s: %w", b.Path, err)
	}
	up := func(prog *ebpf.Program, fn *GoFunc, off uint64) error {
		l, err := ex.Uprobe(fn.Name, prog, &link.UprobeOptions{Address: fn.FileOffset, Offset: off})
		if err != nil {
			return fmt.Errorf("TLS probes: uprobe %s+%#x in %s: %w", fn.Name, off, b.Path, err)
		}
		p.links = append(p.links, l)
		return nil
	}
	// RETs first, entry last: an entry without its returns would leave
	// in-flight records behind.
	for _, off := range b.Handshake.Rets {
		if err := up(p.objs.GoTlsHandshakeRet, &b.Handshake, off); err != nil {
			return err
		}
	}
	if b.Alert != nil {
		if err := up(p.objs.GoTlsSendAlert, b.Alert, 0); err != nil {
			return err
		}
	}
	return up(p.objs.GoTlsHandshakeEntry, &b.Handshake, 0)
}

func (p *Probe) attachLibSSL(lib string) error {
	ex, err := link.OpenExecutable(lib)
	if err != nil {
		return fmt.Errorf("TLS probes: open %s: %w", lib, err)
	}
	for _, a := range []struct {
		sym  string
		prog *ebpf.Program
		ret  bool
	}{
		{"SSL_get_error", p.objs.SslGetErrorRet, true},
		{"SSL_get_error", p.objs.SslGetErrorEntry, false},
		{"SSL_do_handshake", p.objs.SslHandshakeRet, true},
		{"SSL_connect", p.objs.SslHandshakeRet, true},
		{"SSL_do_handshake", p.objs.SslHandshakeEntry, false},
		{"SSL_connect", p.objs.SslHandshakeEntry, false},
	} {
		var l link.Link
		if a.ret {
			l, err = ex.Uretprobe(a.sym, a.prog, nil)
		} else {
			l, err = ex.Uprobe(a.sym, a.prog, nil)
		}
		if err != nil {
			return fmt.Errorf("TLS probes: probe %s in %s: %w", a.sym, lib, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// Programs implements bpf.Extension: the sensor reports their run counts.
// A program that was not loaded (the socket program without its
// tracepoint or with NoSocket) is left out.
func (p *Probe) Programs() map[string]*ebpf.Program {
	all := map[string]*ebpf.Program{
		"go_tls_handshake_entry": p.objs.GoTlsHandshakeEntry,
		"go_tls_handshake_ret":   p.objs.GoTlsHandshakeRet,
		"go_tls_send_alert":      p.objs.GoTlsSendAlert,
		"ssl_handshake_entry":    p.objs.SslHandshakeEntry,
		"ssl_handshake_ret":      p.objs.SslHandshakeRet,
		"ssl_get_error_entry":    p.objs.SslGetErrorEntry,
		"ssl_get_error_ret":      p.objs.SslGetErrorRet,
		"tls_tcp_sendmsg":        p.objs.TlsTcpSendmsg,
	}
	for name, prog := range all {
		if prog == nil {
			delete(all, name)
		}
	}
	return all
}

// Close detaches every probe and frees the programs and private maps (the
// shared maps belong to the sensor). It is safe to call more than once.
func (p *Probe) Close() error {
	p.once.Do(func() {
		var errs []error
		if p.sensor != nil {
			if err := p.sensor.DetachWhileTrees(p.objs.TlsTcpSendmsg); err != nil {
				errs = append(errs, fmt.Errorf("TLS probes: %w", err))
			}
		}
		for i := len(p.links) - 1; i >= 0; i-- {
			if err := p.links[i].Close(); err != nil {
				errs = append(errs, fmt.Errorf("TLS probes: detach: %w", err))
			}
		}
		p.links = nil
		if err := p.objs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("TLS probes: close objects: %w", err))
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// haveTracepoint says whether the kernel's BTF has the raw tracepoint name.
func haveTracepoint(name string) error {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("kernel BTF: %w", err)
	}
	var fn *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &fn); err != nil {
		return fmt.Errorf("the kernel has no %s tracepoint (a recent 6.x kernel has): %w", name, err)
	}
	return nil
}

// defaultGoBinaries is the go command on PATH and $GOROOT/bin/go, resolved
// through symlinks, each file once.
func defaultGoBinaries() []string {
	var paths []string
	if p, err := exec.LookPath("go"); err == nil {
		paths = append(paths, p)
	}
	if root := os.Getenv("GOROOT"); root != "" {
		paths = append(paths, filepath.Join(root, "bin", "go"))
	}
	return paths
}

// dedupeFiles resolves symlinks and keeps each file (inode) once.
func dedupeFiles(paths []string) []string {
	var out []string
	var seen []os.FileInfo
next:
	for _, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		fi, err := os.Stat(p)
		if err != nil {
			out = append(out, p) // let attaching report the error
			continue
		}
		for _, s := range seen {
			if os.SameFile(s, fi) {
				continue next
			}
		}
		seen = append(seen, fi)
		out = append(out, p)
	}
	return out
}

// findLibSSL finds libssl.so.3 through the dynamic linker cache, then the
// usual directories.
func findLibSSL() string {
	if out, err := exec.Command("ldconfig", "-p").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, target, ok := strings.Cut(strings.TrimSpace(line), " => ")
			if ok && strings.HasPrefix(name, "libssl.so.3 ") && strings.Contains(name, "x86-64") {
				return strings.TrimSpace(target)
			}
		}
	}
	for _, dir := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib"} {
		p := filepath.Join(dir, "libssl.so.3")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// LinkIDs returns the kernel IDs of the attached links, for diagnostics and
// for checking that Close removed them.
func (p *Probe) LinkIDs() []link.ID {
	var ids []link.ID
	for _, l := range p.links {
		if info, err := l.Info(); err == nil {
			ids = append(ids, info.ID)
		}
	}
	return ids
}
