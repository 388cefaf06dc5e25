package btflayout

import (
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Field is a member of the struct: byte offset from its start and size.
type Field struct {
	Offset int
	Size   int
}

// Struct is the flattened layout of a C struct: a nested struct member is
// a field ("hdr") and so is each of its members ("hdr.pid").
type Struct struct {
	Name   string
	Size   int
	Fields map[string]Field
}

// Cache returns a test helper that finds struct name in the BTF of the
// collection load returns (a bpf2go loadX function): the object is read
// and all of names looked up once, on first use, and a failure fails the
// test.
func Cache(load func() (*ebpf.CollectionSpec, error), names ...string) func(tb testing.TB, name string) *Struct {
	var once sync.Once
	var m map[string]*Struct
	var err error
	return func(tb testing.TB, name string) *Struct {
		tb.Helper()
		once.Do(func() {
			var spec *ebpf.CollectionSpec
			if spec, err = load(); err != nil {
				return
			}
			m = map[string]*Struct{}
			for _, n := range names {
				if m[n], err = Lookup(spec.Types, n); err != nil {
					return
				}
			}
		})
		if err != nil {
			tb.Fatal(err)
		}
		if m[name] == nil {
			tb.Fatalf("btflayout: struct %s is not among %v", name, names)
		}
		return m[name]
	}
}

// Lookup finds struct name in types (ebpf.CollectionSpec.Types).
func Lookup(types *btf.Spec, name string) (*Struct, error) {
	if types == nil {
		return nil, fmt.Errorf("struct %s: the object has no BTF", name)
	}
	var st *btf.Struct
	if err := types.TypeByName(name, &st); err != nil {
		return nil, fmt.Errorf("struct %s in the object's BTF (is it anchored by a global?): %w", name, err)
	}
	s := &Struct{Name: name, Size: int(st.Size), Fields: map[string]Field{}}
	if err := s.add("", 0, st); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Struct) add(prefix string, base int, st *btf.Struct) error {
	for _, m := range st.Members {
		if m.BitfieldSize != 0 || m.Offset%8 != 0 {
			return fmt.Errorf("struct %s: member %s%s is a bitfield", s.Name, prefix, m.Name)
		}
		off := base + int(m.Offset.Bytes())
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			return fmt.Errorf("struct %s: member %s%s: %w", s.Name, prefix, m.Name, err)
		}
		s.Fields[prefix+m.Name] = Field{off, size}
		if inner, ok := btf.UnderlyingType(m.Type).(*btf.Struct); ok {
			if err := s.add(prefix+m.Name+".", off, inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsPadding says whether a member only fills space: named pad or _pad.
func IsPadding(name string) bool {
	base := name[strings.LastIndex(name, ".")+1:]
	return base == "pad" || base == "_pad"
}

// Check compares the Go side's view of the struct (every member it reads,
// by the same flattened names, offsets relative to base) with the object:
// it lists every member whose offset or size differs, every member of the
// object the Go side does not account for (padding excepted), every member
// the Go side names that the object does not have, and a size mismatch.
// A nested struct is accounted for as a whole ("peer", decoded elsewhere)
// or member by member ("peer.port").
func (s *Struct) Check(goSize, base int, goFields map[string]Field) []error {
	var errs []error
	if goSize != s.Size {
		errs = append(errs, fmt.Errorf("struct %s: Go size %d, object %d", s.Name, goSize, s.Size))
	}
	for _, name := range slices.Sorted(maps.Keys(s.Fields)) {
		f := s.Fields[name]
		g, ok := goFields[name]
		switch {
		case !ok && !IsPadding(name) && !covered(goFields, name):
			errs = append(errs, fmt.Errorf("struct %s: member %s (offset %d, %d bytes) is not decoded in Go", s.Name, name, f.Offset, f.Size))
		case ok && (g.Offset+base != f.Offset || g.Size != f.Size):
			errs = append(errs, fmt.Errorf("struct %s: member %s: Go reads %d bytes at %d, object has %d bytes at %d", s.Name, name, g.Size, g.Offset+base, f.Size, f.Offset))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(goFields)) {
		if _, ok := s.Fields[name]; !ok {
			errs = append(errs, fmt.Errorf("struct %s: Go decodes member %s, which the object does not have", s.Name, name))
		}
	}
	return errs
}

// covered says whether the Go side accounts for member name through its
// enclosing struct or through members of its own.
func covered(goFields map[string]Field, name string) bool {
	for g := range goFields {
		if strings.HasPrefix(name, g+".") || strings.HasPrefix(g, name+".") {
			return true
		}
	}
	return false
}

// Record is a zeroed record of the struct's size, to fill with Put.
func (s *Struct) Record() []byte { return make([]byte, s.Size) }

// Put writes v into member name of rec, little endian: an integer of the
// member's size, or a string or byte slice copied into an array member
// (at most its size). A wrong name, type or size is a test's mistake and
// panics.
func (s *Struct) Put(rec []byte, name string, v any) {
	f, ok := s.Fields[name]
	if !ok {
		panic(fmt.Sprintf("btflayout: struct %s has no member %s", s.Name, name))
	}
	b := rec[f.Offset : f.Offset+f.Size]
	le := binary.LittleEndian
	switch v := v.(type) {
	case string:
		copy(b, v)
		return
	case []byte:
		copy(b, v)
		return
	}
	var u uint64
	switch rv := reflect.ValueOf(v); {
	case rv.CanInt():
		u = uint64(rv.Int())
	case rv.CanUint():
		u = rv.Uint()
	default:
		panic(fmt.Sprintf("btflayout: %s.%s: cannot put %T", s.Name, name, v))
	}
	switch f.Size {
	case 1:
		b[0] = byte(u)
	case 2:
		le.PutUint16(b, uint16(u))
	case 4:
		le.PutUint32(b, uint32(u))
	case 8:
		le.PutUint64(b, u)
	default:
		panic(fmt.Sprintf("btflayout: %s.%s is %d bytes, not an integer", s.Name, name, f.Size))
	}
}
