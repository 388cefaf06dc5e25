package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/gopatrol/gopatrol/bpf/internal/objstamp"
)

func main() {
	out := flag.String("o", "", "stamp file to write")
	objs := flag.String("obj", "", "comma-separated objects")
	cc := flag.String("cc", "clang", "the compiler bpf2go used")
	flag.Parse()
	if *out == "" || *objs == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: stampgen -o STAMP -obj OBJ[,OBJ] INPUT...")
		os.Exit(2)
	}
	major := objstamp.ClangMajor(*cc)
	if major == "" {
		fmt.Fprintf(os.Stderr, "stampgen: cannot read the version of %s\n", *cc)
		os.Exit(1)
	}
	st, err := objstamp.Compute(".", major, flag.Args(), strings.Split(*objs, ","))
	if err == nil {
		err = st.Write(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stampgen:", err)
		os.Exit(1)
	}
}
