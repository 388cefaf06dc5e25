package bpf

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// record builds a raw ring-buffer record the way sensor.bpf.c lays it out.
func record(typ EventType, size int, body func(b []byte)) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint16(b[0:], uint16(typ))
	le.PutUint16(b[2:], uint16(size))
	le.PutUint32(b[4:], 100)
	le.PutUint32(b[8:], 101)
	le.PutUint32(b[12:], 42)
	le.PutUint64(b[16:], uint64(5*time.Second))
	if body != nil {
		body(b[HeaderSize:])
	}
	return b
}

func execRecord() []byte {
	return record(TypeExec, execEventSize, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint32(b[0:], 42)
		le.PutUint32(b[4:], 65534)
		le.PutUint64(b[8:], 7)
		le.PutUint64(b[16:], uint64(4*time.Second))
		name := "/usr/local/go/pkg/tool/linux_amd64/compile"
		args := "compile\x00-p\x00example.com/m/a\x00"
		le.PutUint16(b[24:], uint16(len(name)))
		le.PutUint16(b[26:], uint16(len(args)))
		copy(b[32:], "compile")
		copy(b[48:], name)
		copy(b[48+pathMax:], args)
	})
}

func exitRecord() []byte {
	return record(TypeExit, exitEventSize, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint32(b[0:], 42)
		le.PutUint32(b[8:], 2<<8)
		le.PutUint64(b[32:], uint64(3*time.Millisecond))
		copy(b[40:], "compile")
	})
}

func fileRecord() []byte {
	return record(TypeFileFailure, fileEventSize, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint32(b[0:], 258)
		le.PutUint32(b[4:], uint32(syscall.EACCES))
		le.PutUint16(b[8:], uint16(ClassGOCACHE))
		p := "/root/.cache/go-build/00"
		le.PutUint16(b[10:], uint16(len(p)))
		copy(b[16:], p)
	})
}

func connectRecord() []byte {
	return record(TypeConnect, connectEventSize, func(b []byte) {
		le := binary.LittleEndian
		le.PutUint16(b[0:], syscall.AF_INET6)
		le.PutUint16(b[2:], 8443)
		a := netip.MustParseAddr("::1").As16()
		copy(b[4:], a[:])
		ret := int32(-int32(syscall.ECONNREFUSED))
		le.PutUint32(b[20:], uint32(ret))
		le.PutUint64(b[24:], uint64(2*time.Millisecond))
	})
}

func TestDecode(t *testing.T) {
	ev, err := Decode(execRecord())
	if err != nil {
		t.Fatal(err)
	}
	x := ev.(*ExecEvent)
	if x.PID != 100 || x.TID != 101 || x.RootPID != 42 || x.UID != 65534 || x.Comm != "compile" ||
		x.Filename != "/usr/local/go/pkg/tool/linux_amd64/compile" ||
		!slices.Equal(x.Args, []string{"compile", "-p", "example.com/m/a"}) || x.Type != TypeExec {
		t.Errorf("exec: %+v", x)
	}
	ev, err = Decode(exitRecord())
	if err != nil {
		t.Fatal(err)
	}
	if e := ev.(*ExitEvent); e.ExitCode() != 2 || e.Signal() != 0 || e.Duration != 3*time.Millisecond || e.Comm != "compile" {
		t.Errorf("exit: %+v code %d", e, e.ExitCode())
	}
	ev, err = Decode(fileRecord())
	if err != nil {
		t.Fatal(err)
	}
	if f := ev.(*FileFailureEvent); f.Syscall != "mkdirat" || f.Errno != syscall.EACCES || f.Error != "EACCES" ||
		f.Class != ClassGOCACHE || f.Path != "/root/.cache/go-build/00" {
		t.Errorf("file failure: %+v", f)
	}
	ev, err = Decode(connectRecord())
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
		{"size beyond record", execRecord()[:100], "header size"},
		{"size below header", record(TypeExit, HeaderSize, nil)[:HeaderSize-1], "too short"},
		{"truncated exit", record(TypeExit, HeaderSize+8, nil), "want 80"},
		{"unknown type", record(EventType(30), HeaderSize, nil), "unknown type 30"},
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
	raw := record(typ, HeaderSize+9, func(b []byte) { copy(b, "proxy.lan") })
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
	for _, seed := range [][]byte{execRecord(), exitRecord(), fileRecord(), connectRecord(),
		execRecord()[:HeaderSize+40], record(EventType(17), HeaderSize+3, nil), {}} {
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
