package tlsprobe

// The objects are committed; `make generate` rebuilds them with the system
// clang. x86_64 only (-target amd64), like the sensor: the programs read
// x86_64 registers (the Go register ABI's g in r14, results in RAX/RBX) and
// x86_64 syscall numbers. The second step records the hashes that
// TestObjectsFresh checks.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -mcpu=v3 -g -Wall -Werror -I../c -I../c/include" -target amd64 -no-global-types tls ../c/tls.bpf.c
//go:generate go run ../internal/stampgen -o tls.stamp -obj tls_x86_bpfel.o gen.go ../c/tls.bpf.c ../c/gopatrol.h ../c/vmlinux.h ../c/include
