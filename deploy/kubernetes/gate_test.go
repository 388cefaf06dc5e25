package kubernetes

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// gated is testdata/gate (a user's build workloads with the gate
// component) built with krusty and decoded strictly.
type gated struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	config      *corev1.ConfigMap
}

func buildGate(t *testing.T) gated {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "testdata/gate")
	if err != nil {
		t.Fatalf("kustomize build testdata/gate: %v", err)
	}
	g := gated{deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{}}
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch r.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			g.deployments[r.GetName()] = d
			into = d
		case "Job":
			j := &batchv1.Job{}
			g.jobs[r.GetName()] = j
			into = j
		case "ConfigMap":
			g.config = &corev1.ConfigMap{}
			into = g.config
		default:
			t.Fatalf("testdata/gate: unexpected %s %s", r.GetKind(), r.GetName())
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s %s does not decode strictly: %v\n%s", r.GetKind(), r.GetName(), err, b)
		}
	}
	if g.config == nil || len(g.deployments) != 2 || len(g.jobs) != 1 {
		t.Fatalf("testdata/gate built %d deployments, %d jobs, config %v", len(g.deployments), len(g.jobs), g.config != nil)
	}
	return g
}

func gateContainer(t *testing.T, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Name != "gopatrol-gate" {
		t.Fatalf("init containers %+v, want gopatrol-gate alone", spec.InitContainers)
	}
	return spec.InitContainers[0]
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func TestGateComponent(t *testing.T) {
	g := buildGate(t)
	if n := len(g.deployments["docs-server"].Spec.Template.Spec.InitContainers); n != 0 {
		t.Errorf("the unlabelled docs-server got %d init containers", n)
	}
	specs := map[string]corev1.PodSpec{
		"deployment ci-runner": g.deployments["ci-runner"].Spec.Template.Spec,
		"job release-build":    g.jobs["release-build"].Spec.Template.Spec,
	}
	for name, spec := range specs {
		c := gateContainer(t, spec)
		if c.Image != "registry.example/ci-runner:1.26" {
			t.Errorf("%s: gate image %q, want the build image", name, c.Image)
		}
		if c.TerminationMessagePath != "/dev/termination-log" || !slicesContain(c.Args, "--gate-message-file=/dev/termination-log") {
			t.Errorf("%s: the gate's message does not reach the pod's termination message", name)
		}
		// Every $(VAR) refers to a variable defined before it, as the
		// kubelet expands only those; configMapKeyRefs name the generated
		// ConfigMap and keys it has.
		defined := map[string]bool{}
		fields := map[string]string{}
		for _, e := range c.Env {
			for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
				if !defined[m[1]] {
					t.Errorf("%s: %s refers to $(%s) before it is defined", name, e.Name, m[1])
				}
			}
			defined[e.Name] = true
			if vf := e.ValueFrom; vf != nil && vf.FieldRef != nil {
				fields[e.Name] = vf.FieldRef.FieldPath
			}
			if vf := e.ValueFrom; vf != nil && vf.ConfigMapKeyRef != nil {
				ref := vf.ConfigMapKeyRef
				if ref.Name != g.config.Name || g.config.Namespace != "ci" {
					t.Errorf("%s: %s refers to ConfigMap %s, built %s/%s", name, e.Name, ref.Name, g.config.Namespace, g.config.Name)
				}
				if _, ok := g.config.Data[ref.Key]; !ok {
					t.Errorf("%s: %s refers to key %s the ConfigMap lacks", name, e.Name, ref.Key)
				}
			}
		}
		for _, a := range c.Args {
			for _, m := range varRef.FindAllStringSubmatch(a, -1) {
				if !defined[m[1]] {
					t.Errorf("%s: argument %q refers to undefined $(%s)", name, a, m[1])
				}
			}
		}
		// Pod identity and node topology from the Downward API, under the
		// names the export reads (otelcfg, agent.EnvK8sPodUID).
		want := map[string]string{"K8S_NODE_NAME": "spec.nodeName", "K8S_POD_NAME": "metadata.name",
			"K8S_NAMESPACE_NAME": "metadata.namespace", "K8S_POD_UID": "metadata.uid",
			"K8S_ZONE": "metadata.labels['topology.kubernetes.io/zone']", "K8S_REGION": "metadata.labels['topology.kubernetes.io/region']"}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("%s: %s from %q, want %q", name, k, fields[k], v)
			}
		}
		// The mounts name volumes of the pod, and the user's cache volume
		// is kept as written, not merged with the component's.
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
		}
		for _, m := range c.VolumeMounts {
			if _, ok := vols[m.Name]; !ok {
				t.Errorf("%s: the gate mounts %s, which the pod lacks", name, m.Name)
			}
		}
		if v := vols["gopatrol-gate-tmp"]; v.EmptyDir == nil {
			t.Errorf("%s: no emptyDir for the gate's /tmp", name)
		}
		if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
			c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: gate security context %+v", name, c.SecurityContext)
		}
	}
	for _, v := range specs["deployment ci-runner"].Volumes {
		if v.Name == "go-cache" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "ci-go-cache" || v.EmptyDir != nil) {
			t.Errorf("ci-runner volume %+v: the go-cache claim must stay as it was", v)
		}
	}
	if got := g.config.Data["warn_only"]; got != "env.consistency,proxy.*" {
		t.Errorf("warn_only = %q: the user's merged policy did not win", got)
	}
	// The policy's every entry names checks of this gopatrol.
	for _, key := range []string{"gate", "warn_only"} {
		for _, pat := range strings.Split(g.config.Data[key], ",") {
			if !matchesCheck(pat) {
				t.Errorf("ConfigMap %s %q names no check", key, pat)
			}
		}
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func matchesCheck(pat string) bool {
	for _, c := range catalog.All() {
		if ok, _ := filepath.Match(pat, c.ID); ok {
			return true
		}
	}
	return false
}

// otlpSink is a loopback OTLP/HTTP receiver keeping the bodies of metric
// exports (uncompressed protobuf: its strings can be searched).
type otlpSink struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if r.URL.Path == "/v1/metrics" {
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (s *otlpSink) has(subs ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		all := true
		for _, sub := range subs {
			all = all && bytes.Contains(b, []byte(sub))
		}
		if all {
			return true
		}
	}
	return false
}

// gateDownward is what the kubelet would resolve the gate's fieldRefs to.
func gateDownward(path string) string {
	switch path {
	case "spec.nodeName":
		return "box-node"
	case "metadata.name":
		return "release-build-x7k2p"
	case "metadata.namespace":
		return "ci"
	case "metadata.uid":
		return "0b0c0d0e-0000-4000-8000-000000000002"
	case "metadata.labels['topology.kubernetes.io/zone']":
		return "box-zone-a"
	case "metadata.labels['topology.kubernetes.io/region']":
		return "box-region"
	}
	return ""
}

// resolveEnv does the kubelet's part: Downward API fields, ConfigMap keys
// (config, with the collector pointed at the test's receiver) and $(VAR)
// expansion of earlier variables.
func resolveEnv(c corev1.Container, config map[string]string) ([]string, map[string]string) {
	vals := map[string]string{}
	var env []string
	expand := func(s string) string {
		return varRef.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := vals[m[2:len(m)-1]]; ok {
				return v
			}
			return m
		})
	}
	for _, e := range c.Env {
		v := expand(e.Value)
		if vf := e.ValueFrom; vf != nil && vf.FieldRef != nil {
			v = gateDownward(vf.FieldRef.FieldPath)
		}
		if vf := e.ValueFrom; vf != nil && vf.ConfigMapKeyRef != nil {
			v = config[vf.ConfigMapKeyRef.Key]
		}
		vals[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	return env, vals
}

// The gate in a box: the release-build Job's init container, run as its
// pod would run it (user 65534, its env and arguments as the kubelet
// resolves them), chrooted in a mount namespace into an image-like root:
// the build image's go at /usr/local/go, gopatrol at /usr/local/bin, the
// pod's go-cache volume at /cache, an emptyDir at /tmp, a
// /dev/termination-log. A cache volume the build user cannot write stops
// the start with the message; a healthy one passes; both export.
func TestGateInABox(t *testing.T) {
	testgate.Root(t, "make mount namespaces and chroot")
	for _, tool := range []string{"unshare", "mount"} {
		testgate.Tool(t, tool, "util-linux")
	}
	chroot := testgate.Tool(t, "chroot", "coreutils")
	g := buildGate(t)
	job := g.jobs["release-build"].Spec.Template.Spec
	c := gateContainer(t, job)
	uid := job.SecurityContext.RunAsUser
	if uid == nil {
		t.Fatal("release-build has no runAsUser")
	}

	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "gopatrol")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gopatrol")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}

	// The image: a root file system with go, gopatrol, passwd and group,
	// and the mount points of the pod's volumes.
	root := filepath.Join(dir, "root")
	for _, d := range []string{"usr/local/go", "usr/local/bin", "etc", "dev", "proc", "tmp", "cache", "go"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	copyFile(t, bin, filepath.Join(root, "usr/local/bin/gopatrol"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	// The image's own environment, as golang's images set it.
	imageEnv := []string{"PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin", "GOPATH=/go", "GOTOOLCHAIN=local"}

	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	config := map[string]string{}
	for k, v := range g.config.Data {
		config[k] = v
	}
	config["otlp_endpoint"] = srv.URL // the user's collector
	podEnv, vals := resolveEnv(c, config)
	args := append([]string{}, c.Command...)
	for _, a := range c.Args {
		args = append(args, varRef.ReplaceAllStringFunc(a, func(m string) string { return vals[m[2:len(m)-1]] }))
	}

	run := func(t *testing.T, cache string) (int, string, string) {
		t.Helper()
		termLog := filepath.Join(dir, "termination-log")
		os.WriteFile(termLog, nil, 0o666)
		os.Chmod(termLog, 0o666)
		script := `set -e
mount --bind "$BOX_GOROOT" "$BOX_ROOT/usr/local/go"
mount -o remount,bind,ro "$BOX_ROOT/usr/local/go"
mount --bind "$BOX_CACHE" "$BOX_ROOT/cache"
mount -t tmpfs -o mode=1777,size=256m tmpfs "$BOX_ROOT/tmp"
mount -t tmpfs -o mode=755 tmpfs "$BOX_ROOT/dev"
for d in null zero random urandom; do touch "$BOX_ROOT/dev/$d"; mount --bind /dev/$d "$BOX_ROOT/dev/$d"; done
touch "$BOX_ROOT/dev/termination-log"
mount --bind "$BOX_TERMLOG" "$BOX_ROOT/dev/termination-log"
mount -t proc proc "$BOX_ROOT/proc"
cd "$BOX_ROOT"
exec env -i "$@"`
		full := []string{"-m", "--propagation", "private", "sh", "-c", script, "box"}
		full = append(full, append(imageEnv, podEnv...)...)
		full = append(full, chroot, "--userspec="+itoa(int32(*uid))+":"+itoa(int32(*uid)), root)
		full = append(full, args...)
		cmd := exec.CommandContext(ctx, "unshare", full...)
		cmd.Env = append(os.Environ(), "BOX_ROOT="+root, "BOX_GOROOT="+strings.TrimSpace(string(goroot)),
			"BOX_CACHE="+cache, "BOX_TERMLOG="+termLog)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		msg, _ := os.ReadFile(termLog)
		t.Logf("exit %d\nstderr:\n%s", code, stderr.String())
		return code, stderr.String() + "\n" + stdout.String(), string(msg)
	}

	t.Run("a cache volume the build user cannot write stops the start", func(t *testing.T) {
		cache := filepath.Join(dir, "broken-cache")
		os.Mkdir(cache, 0o755) // root's, 0755: user 65534 cannot create go-build in it
		code, out, msg := run(t, cache)
		if code != 1 {
			t.Fatalf("exit %d, want 1 (the pod does not start):\n%s", code, out)
		}
		for _, s := range []string{"this environment cannot build", "gocache.writable", "/cache/go-build"} {
			if !strings.Contains(msg, s) {
				t.Errorf("termination message lacks %q:\n%s", s, msg)
			}
		}
		if !sink.has("gocache.writable", "release-build-x7k2p", "box-node", "box-zone-a") {
			t.Errorf("no OTLP export carrying the check and the pod's identity and topology reached the collector (%d bodies)", len(sink.bodies))
		}
	})

	t.Run("a healthy cache volume passes", func(t *testing.T) {
		cache := filepath.Join(dir, "healthy-cache")
		os.Mkdir(cache, 0o755)
		if err := os.Chown(cache, int(*uid), int(*uid)); err != nil {
			t.Fatal(err)
		}
		code, out, msg := run(t, cache)
		if code != 0 {
			t.Fatalf("exit %d, want 0 (the build starts):\n%s", code, out)
		}
		if strings.Contains(msg, "cannot build") {
			t.Errorf("a passing gate wrote a termination message:\n%s", msg)
		}
	})
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}
