// Command stampgen writes the stamp of a BPF object after bpf2go built it
// (see bpf/internal/objstamp). Run by `go generate` in bpf/ and
// bpf/tlsprobe, right after the bpf2go directive.
//
//	stampgen -o sensor.stamp -obj sensor_x86_bpfel.o c/sensor.bpf.c c/include ...
package main
