package kubernetes

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gopatrol/gopatrol/agent/patrol"
)

// The rules ConfigMap is generated from deploy/rules (its Kustomization):
// every overlay mounts it at the config's rules.dir, it holds every rule
// file of deploy/rules byte for byte, and what the agent would read there
// passes `gopatrol rules validate` (patrol.LoadDir).
func TestRulesConfigMap(t *testing.T) {
	shipped, err := filepath.Glob("../rules/*.y*ml")
	if err != nil || len(shipped) == 0 {
		t.Fatalf("deploy/rules has no rule files (%v)", err)
	}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := build(t, overlay)
			cfg, _ := agentConfig(t, o)
			vol := volume(t, o.ds, "rules")
			if vol.ConfigMap == nil {
				t.Fatal("volume rules is not a ConfigMap")
			}
			if vol.ConfigMap.Optional != nil && *vol.ConfigMap.Optional {
				t.Error("the rules ConfigMap is optional: a missing one would start the agent without rules")
			}
			for _, c := range append(o.ds.Spec.Template.Spec.InitContainers, o.ds.Spec.Template.Spec.Containers...) {
				if m := mount(t, c, "rules"); m.MountPath != cfg.Rules.Dir || !m.ReadOnly {
					t.Errorf("%s: rules mounted at %s (readOnly %v), config rules.dir %q: want the same path, read-only", c.Name, m.MountPath, m.ReadOnly, cfg.Rules.Dir)
				}
			}
			var data map[string]string
			for _, c := range o.configs {
				if c.Name == vol.ConfigMap.Name {
					data = c.Data
				}
			}
			if data == nil {
				t.Fatalf("no ConfigMap %s: the DaemonSet's rules volume names nothing the overlay builds", vol.ConfigMap.Name)
			}
			var want []string
			for _, f := range shipped {
				want = append(want, filepath.Base(f))
			}
			if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, want) {
				t.Fatalf("ConfigMap %s holds %v, deploy/rules has %v: list every rule file in deploy/rules/Kustomization", vol.ConfigMap.Name, got, want)
			}
			dir := t.TempDir()
			for _, f := range shipped {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if data[filepath.Base(f)] != string(b) {
					t.Errorf("ConfigMap's %s differs from %s", filepath.Base(f), f)
				}
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(data[filepath.Base(f)]), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			set, err := patrol.LoadDir(dir)
			if err != nil {
				t.Fatalf("the ConfigMap's rules do not validate: %v", err)
			}
			if len(set.Rules) == 0 {
				t.Error("the ConfigMap's rules hold no rule")
			}
		})
	}
}
