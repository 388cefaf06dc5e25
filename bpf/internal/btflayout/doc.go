// Package btflayout reads the layout of a C struct from the BTF of a
// compiled BPF object: every member's offset and size, nested structs
// flattened ("hdr.pid").
//
// The ring-buffer records are written by C and read by Go at fixed
// offsets. Tests use this package twice so that the two cannot drift
// apart unnoticed: Struct.Check compares every offset and size the Go
// decoder reads with the object (the alignment check), and Struct.Put
// builds test records from the object's layout rather than from the
// decoder's own constants, so that a decoder and its tests cannot be
// wrong together. The structs must be in the object's BTF: the C sources
// anchor them with a global each.
package btflayout
