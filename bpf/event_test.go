package bpf

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// record builds a raw ring-buffer record of C struct name from the layout
// in the committed object's BTF, not from the decoder's offsets: a header
// for pid 100, tid 101, root 42 at 5 s, then fill's members.
func record(tb testing.TB, typ EventType, name string, fill map[string]any) []byte {
	tb.Helper()
	s := objectStruct(tb, name)
	b := s.Record()
	for k, v := range map[string]any{
		"hdr.type": uint16(typ), "hdr.size": uint16(len(b)), "hdr.pid": 100, "hdr.tid": 101,
		"hdr.root_pid": 42, "hdr.ktime_ns": uint64(5 * time.Second),
	} {
		s.Put(b, k, v)
	}
	for k, v := range fill {
		s.Put(b, k, v)
	}
	return b
}

// rawRecord is a record of an arbitrary size: only the header is laid out.
func rawRecord(typ EventType, size int, body string) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint16(b[0:], uint16(typ))
	le.PutUint16(b[2:], uint16(size))
	le.PutUint32(b[12:], 42)
	copy(b[HeaderSize:], body)
	return b
}

func execRecord(tb testing.TB) []byte {
	name := "/usr/local/go/pkg/tool/linux_amd64/compile"
	args := "compile\x00-p\x00example.com/m/a\x00"
	return record(tb, TypeExec, "gp_exec_event", map[string]any{
		"ppid": 42, "uid": 65534, "cgroup_id": uint64(7), "start_ns": uint64(4 * time.Second),
		"filename_len": len(name), "args_len": len(args), "comm": "compile", "filename": name, "args": args,
	})
}

func exitRecord(tb testing.TB) []byte {
	return record(tb, TypeExit, "gp_exit_event", map[string]any{
		"ppid": 42, "exit_code": 2 << 8, "duration_ns": uint64(3 * time.Millisecond), "comm": "compile",
	})
}

func fileRecord(tb testing.TB) []byte {
	p := "/root/.cache/go-build/00"
	return record(tb, TypeFileFailure, "gp_file_event", map[string]any{
		"syscall_nr": 258, "err": int(syscall.EACCES), "class_id": int(ClassGOCACHE), "path_len": len(p), "path": p,
	})
}

// envRecord is a go command's environment: a complete cwd, an exe whose
// walk did not finish, and an environment with a secret.
func envRecord(tb testing.TB) []byte {
	cwd := "m\x00work\x00"                // /work/m
	exe := "go\x00bin\x00go\x00local\x00" // incomplete: decoded as ""
	env := "GOFLAGS=-mod=mod\x00TOKEN=s3cr3t\x00"
	return record(tb, TypeEnv, "gp_env_event", map[string]any{
		"ppid": 41, "uid": 1000, "mnt_ns": uint64(4026531841), "cgroup_id": uint64(9),
		"env_len": len(env), "env_truncated": 1, "cwd_len": len(cwd), "exe_len": len(exe),
		"cwd_complete": 1, "exe_complete": 0, "cwd": cwd, "exe": exe, "env": env,
	})
}

func connectRecord(tb testing.TB) []byte {
	a := netip.MustParseAddr("::1").As16()
	return record(tb, TypeConnect, "gp_connect_event", map[string]any{
		"peer.family": syscall.AF_INET6, "peer.port": 8443, "peer.addr": a[:],
		"ret": int32(-int32(syscall.ECONNREFUSED)), "duration_ns": uint64(2 * time.Millisecond),
	})
}

func TestDecode(t *testing.T) {
	ev, err := Decode(execRecord(t))
	if err != nil {
		t.Fatal(err)
	}
	x := ev.(*ExecEvent)
	if x.PID != 100 || x.TID != 101 || x.RootPID != 42 || x.Time != 5*time.Second || x.PPID != 42 || x.UID != 65534 ||
		x.CgroupID != 7 || x.Start != 4*time.Second || x.Comm != "compile" || x.ArgsTruncated ||
		x.Filename != "/usr/local/go/pkg/tool/linux_amd64/compile" ||
		!slices.Equal(x.Args, []string{"compile", "-p", "example.com/m/a"}) || x.Type != TypeExec {
		t.Errorf("exec: %+v", x)
	}
	ev, err = Decode(exitRecord(t))
	if err != nil {
		t.Fatal(err)
	}
	if e := ev.(*ExitEvent); e.ExitCode() != 2 || e.Signal() != 0 || e.Duration != 3*time.Millisecond || e.Comm != "compile" {
		t.Errorf("exit: %+v code %d", e, e.ExitCode())
	}
	ev, err = Decode(fileRecord(t))
	if err != nil {
		t.Fatal(err)
	}
	if f := ev.(*FileFailureEvent); f.Syscall != "mkdirat" || f.Errno != syscall.EACCES || f.Error != "EACCES" ||
		f.Class != ClassGOCACHE || f.Path != "/root/.cache/go-build/00" {
		t.Errorf("file failure: %+v", f)
	}
	ev, err = Decode(envRecord(t))
	if err != nil {
		t.Fatal(err)
	}
	e := ev.(*EnvEvent)
	if e.PPID != 41 || e.UID != 1000 || e.MountNS != 4026531841 || e.CgroupID != 9 || e.Cwd != "/work/m" || e.Exe != "" ||
		string(e.Environ) != "GOFLAGS=-mod=mod\x00TOKEN=s3cr3t\x00" || !e.EnvironTruncated || TypeEnv.String() != "env" {
		t.Errorf("env: %+v", e)
	}
	if b, err := json.Marshal(e); err != nil || strings.Contains(string(b), "s3cr3t") {
		t.Errorf("env as JSON: %s, %v: want no environment in it", b, err)
	}
	env := e.Environ
	e.ClearEnviron()
	if e.Environ != nil || strings.Trim(string(env), "\x00") != "" {
		t.Errorf("ClearEnviron left %q", env)
	}
	ev, err = Decode(connectRecord(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := ev.(*ConnectEvent); c.Addr.String() != "[::1]:8443" || c.Errno != syscall.ECONNREFUSED || c.Error != "ECONNREFUSED" ||
		c.Duration != 2*time.Millisecond {
		t.Errorf("connect: %+v", c)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"short header", make([]byte, 10), "too short"},
		{"size beyond record", execRecord(t)[:100], "header size"},
		{"size below header", rawRecord(TypeExit, HeaderSize, "")[:HeaderSize-1], "too short"},
		{"truncated exit", rawRecord(TypeExit, HeaderSize+8, ""), "want 80"},
		{"unknown type", rawRecord(EventType(30), HeaderSize, ""), "unknown type 30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRegisterDecoder(t *testing.T) {
	type tlsEvent struct {
		Header
		SNI string
	}
	const typ EventType = 29
	RegisterDecoder(typ, "test_tls", func(h Header, body []byte) (Event, error) {
		return &tlsEvent{h, string(body)}, nil
	})
	defer func() {
		decodersMu.Lock()
		delete(decoders, typ)
		decodersMu.Unlock()
	}()
	raw := rawRecord(typ, HeaderSize+9, "proxy.lan")
	ev, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if e := ev.(*tlsEvent); e.SNI != "proxy.lan" || e.RootPID != 42 || typ.String() != "test_tls" {
		t.Errorf("%+v %s", e, typ)
	}
	for _, bad := range []EventType{TypeExec, 15, 32, typ} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterDecoder(%d) did not panic", bad)
				}
			}()
			RegisterDecoder(bad, "x", nil)
		}()
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range [][]byte{execRecord(f), exitRecord(f), fileRecord(f), connectRecord(f), envRecord(f),
		execRecord(f)[:HeaderSize+40], rawRecord(EventType(17), HeaderSize+3, ""), {}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Decode(raw)
		if err == nil && ev == nil {
			t.Fatal("nil event without error")
		}
		if err == nil && int(ev.EventHeader().Size) > len(raw) {
			t.Fatalf("event claims %d bytes of a %d-byte record", ev.EventHeader().Size, len(raw))
		}
	})
}

func TestWalkedPath(t *testing.T) {
	for _, tt := range []struct{ walk, want string }{
		{"", "/"},
		{"go\x00", "/go"},
		{"go\x00bin\x00go\x00local\x00usr\x00", "/usr/local/go/bin/go"},
	} {
		if got := walkedPath([]byte(tt.walk)); got != tt.want {
			t.Errorf("walkedPath(%q) = %q, want %q", tt.walk, got, tt.want)
		}
	}
}
