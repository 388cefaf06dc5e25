package bpf

// The objects are compiled for x86_64 only (-target amd64): the sensor reads
// syscall arguments from x86_64 pt_regs and uses x86_64 syscall numbers.
// c/include holds the libbpf headers, copied unchanged from Debian 12's
// libbpf-dev 1:1.1.2-0+deb12u1 (LGPL-2.1 OR BSD-2-Clause), so that the
// objects rebuild byte-identical from the repository alone; c/vmlinux.h is
// `bpftool btf dump file /sys/kernel/btf/vmlinux format c` of Linux 6.18.
// The second step records hashes of the C inputs and of the object, which
// TestObjectsFresh compares against the tree.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -mcpu=v3 -g -Wall -Werror -I./c -I./c/include" -target amd64 -no-global-types sensor c/sensor.bpf.c
//go:generate go run ./internal/stampgen -o sensor.stamp -obj sensor_x86_bpfel.o gen.go c/sensor.bpf.c c/gopatrol.h c/vmlinux.h c/include
