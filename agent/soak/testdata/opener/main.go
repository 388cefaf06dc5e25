// Command opener fails N opens of a path that does not exist (its first
// argument is N, its second the path), as a build in a tree with a broken
// GOPATH or a missing module cache would, only faster: the soak suite's
// file-access storm. It prints how many opens failed with ENOENT.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: opener N PATH")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "opener: N %q is not a count\n", os.Args[1])
		os.Exit(2)
	}
	failed := 0
	for range n {
		// The raw syscall: os.Open would retry on EINTR and allocate.
		fd, err := syscall.Open(os.Args[2], syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			syscall.Close(fd)
			continue
		}
		if errors.Is(err, syscall.ENOENT) {
			failed++
		}
	}
	fmt.Println(failed)
}
