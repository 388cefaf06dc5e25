package kubernetes

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gopatrol/gopatrol/agent/preflight"
)

// TestUprobesSysAdminComponent builds each overlay with the
// uprobes-sys-admin component (testdata/uprobes-sys-admin/<overlay>): it
// adds SYS_ADMIN to both containers and, on OpenShift, to the SCC, and
// changes nothing else; the overlays without it keep the capabilities
// preflight.NeededCaps names (TestOverlaysSecurityPosture).
func TestUprobesSysAdminComponent(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			plain := build(t, overlay)
			with := buildDir(t, filepath.Join("testdata", "uprobes-sys-admin", overlay))
			cfg, _ := agentConfig(t, plain)
			want := preflight.NeededCaps(preflightOptions(cfg))
			for i := range want {
				want[i] = strings.TrimPrefix(want[i], "CAP_")
			}
			want = append(want, "SYS_ADMIN")
			slices.Sort(want)

			pod := with.ds.Spec.Template.Spec
			containers := append(slices.Clone(pod.InitContainers), pod.Containers...)
			if len(containers) != 2 {
				t.Fatalf("%d containers, want the preflight init container and the agent", len(containers))
			}
			for _, c := range containers {
				got := capNames(c.SecurityContext.Capabilities.Add)
				if !slices.Equal(got, want) {
					t.Errorf("%s: capabilities add %v, want %v", c.Name, got, want)
				}
			}
			// Everything else as in the overlay: a copy without SYS_ADMIN
			// is the overlay's DaemonSet.
			ds := with.ds.DeepCopy()
			for _, cs := range [][]corev1.Container{ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers} {
				for i := range cs {
					cs[i].SecurityContext.Capabilities.Add = slices.DeleteFunc(cs[i].SecurityContext.Capabilities.Add,
						func(c corev1.Capability) bool { return c == "SYS_ADMIN" })
				}
			}
			if !reflect.DeepEqual(ds, plain.ds) {
				t.Errorf("the component changes the DaemonSet beyond SYS_ADMIN:\nwith %+v\nplain %+v", ds.Spec.Template.Spec, plain.ds.Spec.Template.Spec)
			}
			if with.resources != plain.resources {
				t.Errorf("%d objects with the component, %d without", with.resources, plain.resources)
			}

			if overlay != "openshift" {
				if len(with.sccs) != 0 {
					t.Errorf("%d SCCs outside OpenShift", len(with.sccs))
				}
				return
			}
			if len(with.sccs) != 1 {
				t.Fatalf("%d SCCs, want 1", len(with.sccs))
			}
			got := slices.Clone(with.sccs[0].AllowedCapabilities)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("SCC allowedCapabilities %v, want %v: the pod would not be admitted", got, want)
			}
		})
	}
}

func capNames(cs []corev1.Capability) []string {
	var names []string
	for _, c := range cs {
		names = append(names, string(c))
	}
	slices.Sort(names)
	return names
}
