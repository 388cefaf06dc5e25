package bpf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/bpf/feature"
)

// Defaults of Config.
const (
	// DefaultRingSize holds about 750 exec events (1352 bytes each)
	// between two reads, or 55 go command starts with their environment
	// (18.5 KiB, the largest record); file failures are sampled and counted
	// in the kernel, so even a million failing opens stream only a few.
	DefaultRingSize    = 1 << 20
	DefaultSampleLimit = 8
	defaultEventBuffer = 4096
)

// Config says which processes start a tree and how directories classify.
type Config struct {
	// GoNames are the executable names (the kernel's comm, so at most 15
	// bytes are compared) whose exec starts a tree. Default {"go"}.
	GoNames []string
	// Classes maps each class to its directories. See SetClasses.
	Classes map[Class][]string
	// RingSize is the ring buffer size in bytes: a power of two, a multiple
	// of the page size. Default DefaultRingSize.
	RingSize int
	// SampleLimit is how many failures of each (class, errno) pair are
	// streamed with their path; all are counted. Default DefaultSampleLimit.
	SampleLimit uint32
	// Environ keeps each go command's environment in its EnvEvent. It
	// holds secrets: whoever takes it clears it (EnvEvent.ClearEnviron)
	// once it has read what it needs. Default false: the sensor clears it
	// as it decodes the record.
	Environ bool
	// EventBuffer is the capacity of the Events channel. Default 4096.
	EventBuffer int
	// GoTools are the Go executables whose failed syscalls are observed,
	// through a uprobe on the error branch of their raw syscall function
	// (ResolveGoTool). A listed file that cannot be probed makes Open fail.
	// Default: DefaultGoTools, the go command on PATH and its GOROOT's
	// tools; those are skipped with a warning when refused. Either way a
	// go command or GOROOT tool first seen executing in a tree is probed
	// then, so a toolchain that GOTOOLCHAIN switches to is covered from
	// its second run on (its first run's failures before that are missed).
	GoTools []string
	// Syscalls observes file-access failures on the sys_exit tracepoint
	// instead: every process of a tree is seen, C compilers and git too,
	// but every syscall of every process on the machine then takes the
	// kernel's tracing slow path (docs/benchmarks.md has the price).
	Syscalls bool
	// Eager attaches the tree-scoped programs (TCP connects here, the TLS
	// probes' socket program) at Open and keeps them, instead of only while
	// a Go tree is alive: nothing at the very start of a tree is missed,
	// and every process on the machine pays their dispatch all the time
	// (scope.go). Default false.
	Eager bool
	// Linger is how long the tree-scoped programs stay attached after the
	// last tree ended. Default DefaultLinger.
	Linger time.Duration
	// RunTime turns on the kernel's BPF statistics while the sensor is
	// open, so that Stats reports each program's run count and run time.
	// They are off by default because the kernel then reads the clock
	// twice around every run of every BPF program on the machine, not only
	// ours: on a loopback connect loop, whose six TCP state changes each
	// run gp_sock_state, that alone is about 3 % (docs/benchmarks.md).
	// Counts are also reported when another process holds them on.
	RunTime bool
	Logger  *slog.Logger
}

// Extension is an add-on probe set attached next to the sensor (TLS). The
// sensor reports its programs in Stats and closes it first in Close; its
// Close runs under the sensor's lock and must not call back into it.
type Extension interface {
	Programs() map[string]*ebpf.Program
	Close() error
}

// Sensor is the loaded and attached sensor set.
type Sensor struct {
	objs     sensorObjects
	links    []link.Link
	reader   *ringbuf.Reader
	statsFD  io.Closer // keeps kernel run-time stats on while open
	events   chan Event
	done     chan struct{}
	loopDone chan struct{}
	log      *slog.Logger

	mu        sync.Mutex
	exts      []Extension
	closed    bool
	closeErr  error
	classDirs map[Class][]string
	syscalls  bool
	goNames   []string
	environ   bool            // Config.Environ
	tools     []*GoTool       // probed, in the order of their links
	toolFiles map[fileID]bool // every file tried, probed or refused
	toolLinks []link.Link

	// Tree-scoped programs (scope.go), under scopeMu: it may be taken
	// while mu is held (an extension's Close), never the other way round.
	scopeMu              sync.Mutex
	scoped               []*ebpf.Program
	scopeLinks           map[*ebpf.Program]link.Link
	roots                map[uint32]struct{}
	eager                bool
	linger               time.Duration
	lingerTimer          *time.Timer
	scopeOn, scopePaused bool
	scopeClosed          bool
	nScopeAttaches       uint64
	maxScopeLatency      time.Duration

	nEvents, nDecodeErrors, nUnknown atomic.Uint64
}

// Open checks privileges and kernel features, loads the sensor programs,
// attaches them and starts reading events. A missing privilege or feature
// is a *feature.MissingError naming it.
func Open(cfg Config) (*Sensor, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("eBPF sensors: built for amd64 only (syscall numbers and registers), this is %s", runtime.GOARCH)
	}
	if err := feature.Check(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	spec, err := loadSensor()
	if err != nil {
		return nil, err
	}
	spec.Maps[sensorMapGpEvents].MaxEntries = uint32(cfg.RingSize)
	if err := spec.Variables[sensorVarSampleLimit].Set(cfg.SampleLimit); err != nil {
		return nil, fmt.Errorf("eBPF sensors: set sample limit: %w", err)
	}
	s := newSensor(cfg)
	// Resolve before loading anything: a refusal costs nothing.
	if err := s.resolveTools(cfg.GoTools); err != nil {
		return nil, err
	}
	if err := s.load(spec, cfg); err != nil {
		s.closeAll()
		return nil, err
	}
	return s, nil
}

// withDefaults fills the zero fields of cfg and checks the ring size.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	page := os.Getpagesize()
	if cfg.RingSize < page || cfg.RingSize&(cfg.RingSize-1) != 0 {
		return cfg, fmt.Errorf("eBPF sensors: ring size %d: must be a power of two of at least %d bytes", cfg.RingSize, page)
	}
	if cfg.SampleLimit == 0 {
		cfg.SampleLimit = DefaultSampleLimit
	}
	if len(cfg.GoNames) == 0 {
		cfg.GoNames = []string{"go"}
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = defaultEventBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	return cfg, nil
}

// newSensor is a sensor with nothing loaded yet.
func newSensor(cfg Config) *Sensor {
	return &Sensor{
		events:    make(chan Event, cfg.EventBuffer),
		done:      make(chan struct{}),
		loopDone:  make(chan struct{}),
		log:       cfg.Logger,
		syscalls:  cfg.Syscalls,
		goNames:   cfg.GoNames,
		environ:   cfg.Environ,
		toolFiles: map[fileID]bool{},

		scopeLinks: map[*ebpf.Program]link.Link{},
		roots:      map[uint32]struct{}{},
		eager:      cfg.Eager,
		scopeOn:    cfg.Eager,
		linger:     cfg.Linger,
	}
}

// resolveTools finds the syscall-error probe sites of the Go binaries to
// probe (none with Config.Syscalls, which sees every failure anyway). A
// listed binary that is refused is an error; a default one a warning.
func (s *Sensor) resolveTools(listed []string) error {
	if s.syscalls {
		return nil
	}
	paths := listed
	if len(listed) == 0 {
		paths = DefaultGoTools()
	}
	for _, p := range paths {
		t, err := s.resolveTool(p)
		if err != nil {
			if len(listed) > 0 {
				return fmt.Errorf("eBPF sensors: %w", err)
			}
			s.log.Warn("eBPF sensors: Go binary not probed; its file failures are missed", "path", p, "err", err)
			continue
		}
		if t != nil {
			s.tools = append(s.tools, t)
		}
	}
	return nil
}

// load loads the programs and maps, fills the name and class maps,
// attaches everything and starts reading the ring buffer. On error the
// caller closes what was opened.
func (s *Sensor) load(spec *ebpf.CollectionSpec, cfg Config) error {
	// The kernel counts only while some process holds this fd.
	if cfg.RunTime {
		if c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
			s.log.Warn("BPF run-time stats unavailable", "err", err)
		} else {
			s.statsFD = c
		}
	}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("eBPF sensors: load: %+v", ve)
		}
		return fmt.Errorf("eBPF sensors: load: %w", err)
	}
	for _, name := range cfg.GoNames {
		var key [commLen]byte
		copy(key[:commLen-1], name) // comm is truncated to 15 bytes
		if err := s.objs.GpNames.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("eBPF sensors: go name %q: %w", name, err)
		}
	}
	if err := s.SetClasses(cfg.Classes); err != nil {
		return err
	}
	s.scoped = []*ebpf.Program{s.objs.GpSockState}
	if err := s.attach(); err != nil {
		return err
	}
	r, err := ringbuf.NewReader(s.objs.GpEvents)
	if err != nil {
		return fmt.Errorf("eBPF sensors: ring buffer reader: %w", err)
	}
	s.reader = r
	go s.readLoop()
	return nil
}

// attach attaches the programs, the tree-scoped ones if a tree is alive.
// Fork and exit come before exec so that no member of a new tree escapes
// between the attachments.
func (s *Sensor) attach() error {
	progs := []*ebpf.Program{s.objs.GpFork, s.objs.GpExit, s.objs.GpExec}
	if s.syscalls {
		progs = append(progs, s.objs.GpSysExit)
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			return fmt.Errorf("eBPF sensors: attach %s: %w", p, err)
		}
		s.links = append(s.links, l)
	}
	for _, t := range s.tools {
		if err := s.attachTool(t); err != nil {
			return err
		}
	}
	return s.resumeScoped()
}

// attachTool places the syscall-error uprobes in t. A uprobe lives in the
// file's pages: every process running the file, now or later, has it.
func (s *Sensor) attachTool(t *GoTool) error {
	ex, err := link.OpenExecutable(t.Path)
	if err != nil {
		return fmt.Errorf("eBPF sensors: open %s: %w", t.Path, err)
	}
	for _, site := range t.Sites {
		l, err := ex.Uprobe(site.Func, s.objs.GpGoSyscallError, &link.UprobeOptions{Address: site.FuncOffset, Offset: site.Offset})
		if err != nil {
			return fmt.Errorf("eBPF sensors: uprobe %s+%#x in %s: %w", site.Func, site.Offset, t.Path, err)
		}
		s.toolLinks = append(s.toolLinks, l)
	}
	return nil
}

// detach detaches the programs, keeping the maps. Closing a uprobe link
// waits for an RCU grace period (about 100 ms here), so they close in
// parallel: one wait rather than one per probed binary.
func (s *Sensor) detach() error {
	links := append(s.toolLinks, s.links...)
	errs := make([]error, len(links)+1)
	errs[len(links)] = s.pauseScoped()
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Go(func() {
			if err := l.Close(); err != nil {
				errs[i] = fmt.Errorf("detach: %w", err)
			}
		})
	}
	wg.Wait()
	s.links, s.toolLinks = nil, nil
	return errors.Join(errs...)
}

// fileID identifies a file by device and inode: uprobes attach to the
// inode, and one file probed twice would count each failure twice.
type fileID struct{ dev, ino uint64 }

// resolveTool resolves path unless its file was tried before, in which case
// it returns nil, nil. Callers hold s.mu or run before the sensor is shared.
func (s *Sensor) resolveTool(path string) (*GoTool, error) {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		path = r
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotProbeable, path, err)
	}
	id := fileID{st.Dev, st.Ino}
	if s.toolFiles[id] {
		return nil, nil
	}
	s.toolFiles[id] = true
	return ResolveGoTool(path)
}

// probeOnExec probes a go command or GOROOT tool seen executing in a tree
// for the first time. It runs on its own goroutine: resolving and attaching
// take milliseconds, and the ring buffer must keep draining meanwhile.
func (s *Sensor) probeOnExec(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	t, err := s.resolveTool(path)
	if t == nil {
		if err != nil {
			s.log.Warn("eBPF sensors: Go binary not probed; its file failures are missed", "path", path, "err", err)
		}
		return
	}
	if err := s.attachTool(t); err != nil {
		s.log.Warn("eBPF sensors: Go binary not probed; its file failures are missed", "path", path, "err", err)
		return
	}
	s.tools = append(s.tools, t)
	s.log.Info("eBPF sensors: probed Go binary first seen in a tree", "path", path, "go", t.GoVersion)
}

// GoTools lists the Go executables whose failed syscalls are observed.
func (s *Sensor) GoTools() []GoTool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]GoTool, len(s.tools))
	for i, t := range s.tools {
		out[i] = *t
	}
	return out
}

// Events delivers decoded events. It is closed by Close. A consumer that
// falls behind fills the ring buffer, and the kernel counts drops.
func (s *Sensor) Events() <-chan Event { return s.events }

func (s *Sensor) readLoop() {
	defer close(s.loopDone)
	defer close(s.events)
	var rec ringbuf.Record
	seen := map[fileID]bool{} // toolchain binaries already handed to probeOnExec
	for {
		if err := s.reader.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			s.log.Warn("ring buffer read", "err", err)
			continue
		}
		ev, err := Decode(rec.RawSample)
		if env, ok := ev.(*EnvEvent); ok {
			// An environment's secrets live on only in the EnvEvent,
			// and there only when asked for.
			clear(rec.RawSample)
			if !s.environ {
				env.ClearEnviron()
			}
		}
		if err != nil {
			var ut *UnknownTypeError
			if errors.As(err, &ut) {
				s.nUnknown.Add(1)
			} else {
				s.nDecodeErrors.Add(1)
				s.log.Warn("decode event", "err", err)
			}
			continue
		}
		s.nEvents.Add(1)
		switch ev := ev.(type) {
		case *ExecEvent:
			if ev.PID == ev.RootPID {
				s.treeStarted(ev.PID, ev.Time)
			}
			if !s.syscalls && isToolchainBinary(ev.Filename, s.goNames) {
				var st unix.Stat_t
				if unix.Stat(ev.Filename, &st) == nil && !seen[fileID{st.Dev, st.Ino}] {
					seen[fileID{st.Dev, st.Ino}] = true
					go s.probeOnExec(ev.Filename)
				}
			}
		case *ExitEvent:
			if ev.PID == ev.RootPID {
				s.treeEnded(ev.PID)
			}
		}
		select {
		case s.events <- ev:
		case <-s.done:
			return
		}
	}
}

// pathKey is struct gp_path_key.
type pathKey struct {
	PrefixLen uint32
	Data      [pathMax]byte
}

// SetClasses replaces the directory classes. Each directory must be
// absolute; its symlink-resolved form is added too, because processes see
// whichever path they were given. A directory matches itself and anything
// below it; the longest match wins.
func (s *Sensor) SetClasses(classes map[Class][]string) error {
	var keys []pathKey
	var vals []uint32
	add := func(p string, c Class) error {
		for _, k := range []string{p + "\x00", p + "/"} {
			if p == "/" && k == "//" {
				k = "/"
			}
			if len(k) > pathMax {
				return fmt.Errorf("eBPF sensors: %s directory %s: longer than %d bytes", c, p, pathMax-1)
			}
			var key pathKey
			key.PrefixLen = uint32(len(k) * 8)
			copy(key.Data[:], k)
			keys = append(keys, key)
			vals = append(vals, uint32(c))
		}
		return nil
	}
	for c, dirs := range classes {
		if c == ClassOther || c == ClassRelative || c >= numClasses {
			return fmt.Errorf("eBPF sensors: class %d cannot have directories (use 1..14)", c)
		}
		for _, d := range dirs {
			if !filepath.IsAbs(d) {
				return fmt.Errorf("eBPF sensors: %s directory %q is not absolute", c, d)
			}
			d = filepath.Clean(d)
			if err := add(d, c); err != nil {
				return err
			}
			if r, err := filepath.EvalSymlinks(d); err == nil && r != d {
				if err := add(r, c); err != nil {
					return err
				}
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var old []pathKey
	var k pathKey
	var v uint32
	it := s.objs.GpClasses.Iterate()
	for it.Next(&k, &v) {
		old = append(old, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("eBPF sensors: list classes: %w", err)
	}
	for _, k := range old {
		if err := s.objs.GpClasses.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("eBPF sensors: clear classes: %w", err)
		}
	}
	for i := range keys {
		if err := s.objs.GpClasses.Put(keys[i], vals[i]); err != nil {
			return fmt.Errorf("eBPF sensors: class %s %q: %w", Class(vals[i]), cString(keys[i].Data[:]), err)
		}
	}
	s.classDirs = classes
	return nil
}

// ResetSamples restarts the per-(class, errno) sample budget, so that the
// next failures of each pair are streamed again (e.g. once per export
// interval). Counters are not reset.
func (s *Sensor) ResetSamples() error {
	for i := uint32(0); i < numClasses*uint32(len(countedErrnos)); i++ {
		if err := s.objs.GpSamples.Put(i, uint32(0)); err != nil {
			return fmt.Errorf("eBPF sensors: reset samples: %w", err)
		}
	}
	return nil
}

// ShareMaps prepares an extension's collection spec to use the sensor's
// process tree, ring buffer and drop counters: it aligns the spec's
// declarations (the ring size may differ from the C default) and returns
// the maps for ebpf.CollectionOptions.MapReplacements.
func (s *Sensor) ShareMaps(spec *ebpf.CollectionSpec) (map[string]*ebpf.Map, error) {
	shared := map[string]*ebpf.Map{
		sensorMapGpTree:   s.objs.GpTree,
		sensorMapGpEvents: s.objs.GpEvents,
		sensorMapGpDrops:  s.objs.GpDrops,
	}
	for name, m := range shared {
		ms, ok := spec.Maps[name]
		if !ok {
			delete(shared, name)
			continue
		}
		ms.MaxEntries = m.MaxEntries()
		if err := ms.Compatible(m); err != nil {
			return nil, fmt.Errorf("eBPF sensors: shared map %s declared differently (include c/gopatrol.h): %w", name, err)
		}
	}
	return shared, nil
}

// AddExtension hands e to the sensor: Stats reports its programs and Close
// closes it before the sensor's own programs.
func (s *Sensor) AddExtension(e Extension) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("eBPF sensors: AddExtension after Close")
	}
	s.exts = append(s.exts, e)
	return nil
}

// Close detaches every program (extensions first), stops reading and frees
// the maps. Events is closed when it returns.
func (s *Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	var errs []error
	for i := len(s.exts) - 1; i >= 0; i-- {
		if err := s.exts[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close extension: %w", err))
		}
	}
	errs = append(errs, s.closeAll())
	s.closeErr = errors.Join(errs...)
	return s.closeErr
}

func (s *Sensor) closeAll() error {
	errs := []error{s.detach(), s.closeScoped()}
	close(s.done)
	if s.reader != nil {
		if err := s.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ring buffer reader: %w", err))
		}
		<-s.loopDone
	} else {
		close(s.events)
	}
	if err := s.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close sensor objects: %w", err))
	}
	if s.statsFD != nil {
		s.statsFD.Close()
	}
	return errors.Join(errs...)
}
