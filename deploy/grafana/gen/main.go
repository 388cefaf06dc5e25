// Command gen writes the health-score board's JSON (go generate in
// deploy/grafana; make generate).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gopatrol/gopatrol/deploy/grafana"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
)

func main() {
	out := flag.String("o", "gopatrol-health.json", "file to write the board to")
	flag.Parse()
	b, err := grafana.JSON()
	if err == nil {
		err = atomicfile.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
