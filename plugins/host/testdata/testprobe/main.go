package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

type probe struct {
	name  string
	infos *atomic.Int32
}

func (p probe) env(k string) string { return os.Getenv("TESTPROBE_" + k + "_" + p.name) }

func (p probe) Info() sdk.Info {
	if d, err := time.ParseDuration(p.env("INFOSLEEP")); err == nil && p.infos.Add(1) > 1 {
		time.Sleep(d)
	}
	return sdk.Info{Name: p.name, Version: "v0.0.1-test", Description: "scripted test probe"}
}

func (p probe) Detect(context.Context) (map[string]string, error) {
	if marker := p.env("PANIC"); marker != "" {
		if os.Remove(marker) == nil {
			panic("testprobe: scripted panic")
		}
	}
	attrs := p.env("ATTRS")
	if attrs == "" {
		return nil, sdk.NotThisCloudf("no attributes scripted")
	}
	m := map[string]string{}
	for _, kv := range strings.Split(attrs, ",") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	if p.env("REPORTPROCS") != "" {
		m["gomaxprocs"] = strconv.Itoa(runtime.GOMAXPROCS(0)) // what the host gave it
	}
	return m, nil
}

// Collect returns one point per scripted attribute: enough to see the
// Collect RPC carry names, values and attributes.
func (p probe) Collect(context.Context) ([]sdk.Point, error) {
	var pts []sdk.Point
	for _, kv := range strings.Split(p.env("ATTRS"), ",") {
		if k, _, ok := strings.Cut(kv, "="); ok {
			pts = append(pts, sdk.Point{Name: "testprobe.attr", Value: 1, Unit: "{attribute}", Attributes: map[string]string{"key": k}})
		}
	}
	return pts, nil
}

func main() {
	p := probe{name: strings.TrimPrefix(filepath.Base(os.Args[0]), "gopatrol-probe-"), infos: new(atomic.Int32)}
	if s := p.env("STDOUT"); s != "" {
		fmt.Println(s)
	}
	if code, err := strconv.Atoi(p.env("EXIT")); err == nil {
		fmt.Fprintf(os.Stderr, "testprobe %s: cannot read its configuration, exiting with %d\n", p.name, code)
		os.Exit(code)
	}
	if p.env("FORK") != "" {
		// The bug of a plugin that runs a helper: the helper inherits
		// stdout and outlives the plugin.
		child := exec.Command("sleep", "600")
		if p.env("FORK") != "detached" {
			child.Stdout, child.Stderr = os.Stdout, os.Stderr
		}
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "testprobe: fork:", err)
			os.Exit(1)
		}
	}
	if marker := p.env("SLOWSTART"); marker != "" {
		if _, err := os.Stat(marker); err == nil {
			os.WriteFile(marker+".seen", nil, 0o600)
			time.Sleep(time.Minute)
		}
	}
	sdk.Serve(p)
}
