// Command testprobe is a scripted probe for plugins/host's tests. Copies
// of it run under several names; each reads its behaviour from variables
// suffixed with its name (gopatrol-probe-NAME):
//
//	TESTPROBE_ATTRS_NAME=k=v,k=v   attributes Detect returns
//	TESTPROBE_PANIC_NAME=FILE      panic in Detect if FILE exists (and remove it)
//	TESTPROBE_STDOUT_NAME=TEXT     print TEXT on stdout before Serve (the bug)
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

type probe struct{ name string }

func (p probe) env(k string) string { return os.Getenv("TESTPROBE_" + k + "_" + p.name) }

func (p probe) Info() sdk.Info {
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
	p := probe{name: strings.TrimPrefix(filepath.Base(os.Args[0]), "gopatrol-probe-")}
	if s := p.env("STDOUT"); s != "" {
		fmt.Println(s)
	}
	sdk.Serve(p)
}
