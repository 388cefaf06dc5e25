package btflayout

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// spec builds, in BTF, the C struct
//
//	struct inner { __u16 a; __u32 b; };                  // b at 4
//	struct outer { struct inner hdr; __u64 x; __u32 _pad; __u8 arr[4]; };
func spec(t *testing.T) *btf.Spec {
	t.Helper()
	u8 := &btf.Int{Name: "__u8", Size: 1}
	u16 := &btf.Int{Name: "__u16", Size: 2}
	u32 := &btf.Int{Name: "__u32", Size: 4}
	u64 := &btf.Int{Name: "__u64", Size: 8}
	inner := &btf.Struct{Name: "inner", Size: 8, Members: []btf.Member{
		{Name: "a", Type: u16, Offset: 0}, {Name: "b", Type: u32, Offset: 32},
	}}
	outer := &btf.Struct{Name: "outer", Size: 24, Members: []btf.Member{
		{Name: "hdr", Type: inner, Offset: 0}, {Name: "x", Type: u64, Offset: 64},
		{Name: "_pad", Type: u32, Offset: 128},
		{Name: "arr", Type: &btf.Array{Index: u32, Type: u8, Nelems: 4}, Offset: 160},
	}}
	b, err := btf.NewBuilder([]btf.Type{outer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLookupFlattens(t *testing.T) {
	s, err := Lookup(spec(t), "outer")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Field{
		"hdr": {0, 8}, "hdr.a": {0, 2}, "hdr.b": {4, 4}, "x": {8, 8}, "_pad": {16, 4}, "arr": {20, 4},
	}
	if s.Size != 24 || len(s.Fields) != len(want) {
		t.Fatalf("outer: size %d, fields %v; want 24, %v", s.Size, s.Fields, want)
	}
	for k, v := range want {
		if s.Fields[k] != v {
			t.Errorf("%s = %+v, want %+v", k, s.Fields[k], v)
		}
	}
	if _, err := Lookup(spec(t), "missing"); err == nil || !strings.Contains(err.Error(), "anchored") {
		t.Errorf("Lookup(missing) = %v, want an error that says how to anchor it", err)
	}
}

func TestCheck(t *testing.T) {
	s, err := Lookup(spec(t), "outer")
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]Field{"hdr.a": {0, 2}, "hdr.b": {4, 4}, "x": {8, 8}, "arr": {20, 4}}
	tests := []struct {
		name  string
		size  int
		base  int
		edit  func(map[string]Field)
		wants []string
	}{
		{"member by member", 24, 0, func(map[string]Field) {}, nil},
		{"nested struct whole, body offsets", 16, 8, func(m map[string]Field) {
			delete(m, "hdr.a")
			delete(m, "hdr.b")
			m["hdr"] = Field{-8, 8}
			m["x"] = Field{0, 8}
			m["arr"] = Field{12, 4}
		}, nil},
		{"moved", 24, 0, func(m map[string]Field) { m["x"] = Field{12, 8} }, []string{"member x: Go reads 8 bytes at 12, object has 8 bytes at 8"}},
		{"resized", 24, 0, func(m map[string]Field) { m["hdr.b"] = Field{4, 2} }, []string{"member hdr.b"}},
		{"not decoded", 24, 0, func(m map[string]Field) { delete(m, "x") }, []string{"member x (offset 8, 8 bytes) is not decoded"}},
		{"not in the object", 24, 0, func(m map[string]Field) { m["y"] = Field{8, 8} }, []string{"member y, which the object does not have"}},
		{"size", 32, 0, func(map[string]Field) {}, []string{"Go size 32, object 24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]Field{}
			for k, v := range good {
				m[k] = v
			}
			tt.edit(m)
			errs := s.Check(tt.size+tt.base, tt.base, m)
			if len(errs) != len(tt.wants) {
				t.Fatalf("Check: %v, want %d errors %q", errs, len(tt.wants), tt.wants)
			}
			for i, w := range tt.wants {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q, want %q", errs[i], w)
				}
			}
		})
	}
}

func TestPut(t *testing.T) {
	s, err := Lookup(spec(t), "outer")
	if err != nil {
		t.Fatal(err)
	}
	rec := s.Record()
	s.Put(rec, "hdr.a", uint16(0x0102))
	s.Put(rec, "hdr.b", -2)
	s.Put(rec, "x", uint64(1)<<40)
	s.Put(rec, "arr", "abcdef") // cut to the member's 4 bytes
	want := []byte{
		0x02, 0x01, 0, 0, 0xfe, 0xff, 0xff, 0xff,
		0, 0, 0, 0, 0, 1, 0, 0,
		0, 0, 0, 0, 'a', 'b', 'c', 'd',
	}
	if !bytes.Equal(rec, want) {
		t.Errorf("record\n% x\nwant\n% x", rec, want)
	}
	for _, bad := range []struct {
		name string
		v    any
	}{{"nope", 1}, {"x", 1.5}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Put(%s, %v) did not panic", bad.name, bad.v)
				}
			}()
			s.Put(rec, bad.name, bad.v)
		}()
	}
}
