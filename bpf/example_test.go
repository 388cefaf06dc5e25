package bpf_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gopatrol/gopatrol/bpf"
)

// Example opens the sensor, runs a program whose name starts a tree, and
// reads that tree's events: its exec, then its exit. Events of every other
// tree on the machine (a go command someone else runs) are left aside by
// the root's pid.
//
// The example really loads and attaches the programs, so it needs what the
// package's tests need: root (or CAP_BPF and CAP_PERFMON) and a kernel with
// BTF. Unlike the tests it cannot skip itself: without them it prints
// what is missing instead of the output below, and fails.
func Example() {
	// A tree starts at the exec of a program named in GoNames ("go" by
	// default). A copy of true under another name keeps the example's tree
	// apart from real go commands.
	dir, err := os.MkdirTemp("", "gopatrol-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	prog := filepath.Join(dir, "example-go")
	if err := copyFile(prog, "/bin/true"); err != nil {
		fmt.Println(err)
		return
	}

	s, err := bpf.Open(bpf.Config{GoNames: []string{"example-go"}})
	if err != nil {
		fmt.Println(err) // e.g. a *feature.MissingError naming CAP_BPF
		return
	}
	defer s.Close()

	cmd := exec.Command(prog, "build", "./...")
	if err := cmd.Run(); err != nil {
		fmt.Println(err)
		return
	}
	root := uint32(cmd.Process.Pid)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				fmt.Println("events closed")
				return
			}
			if ev.EventHeader().RootPID != root {
				continue
			}
			switch ev := ev.(type) {
			case *bpf.ExecEvent:
				fmt.Printf("exec %s %q\n", filepath.Base(ev.Filename), ev.Args[1:])
			case *bpf.ExitEvent:
				fmt.Printf("exit %s, status %d\n", ev.Comm, ev.ExitCode())
				return
			}
		case <-timeout:
			fmt.Println("no exit event within 10s")
			return
		}
	}
	// Output:
	// exec example-go ["build" "./..."]
	// exit example-go, status 0
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
