package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/inventory"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// envSecret sits in an unrelated variable of every build: it must reach
// no output, log or file.
const envSecret = "s3cr3t-glpat-envsTestToken-9f8e7d6c5b4a"

// envsConfig watches only gopatrolgo (the test's own go commands, not
// the machine's) and patrols each environment every 3 s.
func envsConfig(stateDir string) string {
	return `
state_dir: ` + stateDir + `
checks:
  every: 1h
  full_at: ""
  timeout: 60s
  skip: [env.functional, cgo.toolchain, build.race-pprof, build.cacheverify, build.pie-aslr, tls.session-reuse, module.verify, module.vendor, proxy.tls]
sensors:
  go_names: [gopatrolgo]
  tls: false
traces:
  enabled: false
environments:
  every: 3s
  parallel: 2
`
}

// nsBuild is a build run as nobody in a mount namespace of its own,
// where the GOROOT copy is mounted at mnt (an empty directory outside).
type nsBuild struct {
	name    string
	mnt     string
	module  string
	vars    map[string]string // its Go variables: exactly what the inventory must show
	holder  *exec.Cmd         // the namespace's shell: it sleeps after the build
	envID   string
	problem string // a check the patrol must find failing ("" for none)
}

func (b *nsBuild) start(t *testing.T, unshare, setpriv, goroot string) {
	t.Helper()
	env := []string{"SECRET_TOKEN=" + envSecret, "LANG=C"}
	for k, v := range b.vars {
		env = append(env, k+"="+v)
	}
	script := fmt.Sprintf("mount --make-rprivate / && mount --bind %s %s && cd %s && "+
		"%s --reuid=nobody --regid=nogroup --clear-groups -- %s/bin/gopatrolgo build -o /dev/null . >/dev/null 2>&1; exec sleep 600",
		goroot, b.mnt, b.module, setpriv, b.mnt)
	b.holder = exec.Command(unshare, "-m", "sh", "-c", script)
	b.holder.Env = env
	b.holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.stop)
}

func (b *nsBuild) stop() {
	if b.holder != nil && b.holder.Process != nil {
		syscall.Kill(-b.holder.Process.Pid, syscall.SIGKILL)
		b.holder.Wait()
	}
}

func (p *proc) envStatus(t *testing.T) *agent.EnvsStatus {
	t.Helper()
	code, body := p.get(t, "/status")
	if code != 200 {
		t.Fatalf("/status %d: %s", code, body)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v", err)
	}
	return st.Environments
}

// envWorld is where the environment tests build: a copy of the host's
// GOROOT (hard links) whose go is also named gopatrolgo, the tools to
// run a build as nobody in a mount namespace of its own, and directories.
type envWorld struct {
	dir, goroot, unshare, setpriv string
}

func newEnvWorld(t *testing.T) *envWorld {
	t.Helper()
	bpftest.Require(t)
	w := &envWorld{unshare: testgate.Tool(t, "unshare", "util-linux"), setpriv: testgate.Tool(t, "setpriv", "util-linux")}
	world, err := os.MkdirTemp("", "gopatrol-envs")
	if err != nil {
		t.Fatal(err)
	}
	w.dir = world
	t.Cleanup(func() { os.RemoveAll(world) })
	os.Chmod(world, 0o755)
	goBin, err := exec.LookPath("go")
	if err != nil {
		testgate.Missing(t, "go: %v", err)
	}
	goBin, _ = filepath.EvalSymlinks(goBin)
	w.goroot = filepath.Join(world, "goroot")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A copy of the host's GOROOT (hard links: same files, its own tree).
	if out, err := exec.CommandContext(ctx, "cp", "-al", filepath.Dir(filepath.Dir(goBin)), w.goroot).CombinedOutput(); err != nil {
		t.Fatalf("copy GOROOT: %v: %s", err, out)
	}
	if err := os.Symlink("go", filepath.Join(w.goroot, "bin", "gopatrolgo")); err != nil {
		t.Fatal(err)
	}
	return w
}

// nobodyDir is a directory nobody owns.
func (w *envWorld) nobodyDir(name string) string {
	d := filepath.Join(w.dir, name)
	os.MkdirAll(d, 0o755)
	os.Chown(d, 65534, 65534)
	return d
}

// rootDir is root's, 0755: nobody cannot write it.
func (w *envWorld) rootDir(name string) string {
	d := filepath.Join(w.dir, name)
	os.MkdirAll(d, 0o755)
	return d
}

// build is a build of a module of its own, named name, with vars (and
// the PATH, HOME, GOTOOLCHAIN and GOPROXY every build gets).
func (w *envWorld) build(name, problem string, vars map[string]string) *nsBuild {
	b := &nsBuild{name: name, problem: problem, mnt: w.rootDir("mnt-" + name), module: w.rootDir("m-" + name), vars: vars}
	os.WriteFile(filepath.Join(b.module, "go.mod"), []byte("module example.com/"+name+"\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(b.module, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	b.vars["PATH"] = b.mnt + "/bin:/usr/bin:/bin"
	b.vars["HOME"] = w.nobodyDir("home-" + name)
	b.vars["GOTOOLCHAIN"] = "local"
	b.vars["GOPROXY"] = "off"
	return b
}

// Builds as another user, each in its own mount namespace with its own
// GOROOT mount: each shows up once with exactly its variables; the broken
// ones are diagnosed as themselves while the agent's own environment
// stays healthy; one whose container is gone is reported unreachable;
// the secret in an unrelated variable reaches nothing.
func TestEnvironmentsOfRealBuilds(t *testing.T) {
	w := newEnvWorld(t)
	unshare, setpriv, goroot, world := w.unshare, w.setpriv, w.goroot, w.dir
	nobodyDir, rootDir, newBuild := w.nobodyDir, w.rootDir, w.build
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	builds := []*nsBuild{
		newBuild("cache", "gocache.writable", map[string]string{"GOCACHE": rootDir("cache-root")}),
		newBuild("goflags", "env.config", map[string]string{"GOCACHE": nobodyDir("cache-b"), "GOFLAGS": "-bogusflag"}),
		newBuild("good", "", map[string]string{"GOCACHE": nobodyDir("cache-c"), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}),
	}

	state := filepath.Join(world, "state")
	p := startAgent(t, agentOpts{config: envsConfig(state), env: []string{"SECRET_TOKEN=" + envSecret}})
	if body := p.waitReady(t); !strings.Contains(body, "sensors attached") {
		t.Fatalf("/readyz: %s", body)
	}
	for _, b := range builds {
		b.start(t, unshare, setpriv, goroot)
	}

	// Each appears once, with exactly its variables, and its patrol
	// diagnoses it: the broken ones fail their check, the good one fails
	// none. Under load a check can time out once: a later patrol (every
	// 3 s) must come right.
	var st *agent.EnvsStatus
	failing := func(r *inventory.Result) string {
		var ids []string
		for _, pr := range r.Problems {
			if pr.Status == "fail" {
				ids = append(ids, pr.ID)
			}
		}
		return strings.Join(ids, " ")
	}
	diagnosed := func(b *nsBuild, e inventory.Entry) bool {
		if e.Patrol == nil || e.Patrol.Outcome == inventory.OutcomeUnreachable {
			return false
		}
		if b.problem == "" {
			return failing(e.Patrol) == ""
		}
		return strings.Contains(failing(e.Patrol), b.problem)
	}
	waitFor(t, 5*time.Minute, "every build's environment diagnosed", func() bool {
		st = p.envStatus(t)
		for _, b := range builds {
			ok := false
			for _, e := range st.Environments {
				if e.Env.Go == b.mnt+"/bin/go" && diagnosed(b, e) {
					b.envID, ok = e.ID, true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})
	for _, b := range builds {
		var seen []inventory.Entry
		for _, e := range st.Environments {
			if e.Env.Go == b.mnt+"/bin/go" {
				seen = append(seen, e)
			}
		}
		if len(seen) != 1 {
			t.Errorf("%s: %d entries, want 1: %+v", b.name, len(seen), seen)
			continue
		}
		e := seen[0]
		if !maps.Equal(e.Env.Vars, b.vars) {
			t.Errorf("%s: vars %v, want exactly %v", b.name, e.Env.Vars, b.vars)
		}
		if e.Env.UID != 65534 || e.Env.Container.MountNS == 0 || e.Env.Module != b.module || e.Env.GOROOT != b.mnt ||
			!strings.HasPrefix(e.Env.Version, "go1.") {
			t.Errorf("%s: %+v: want uid 65534, its own mount namespace, module %s, GOROOT %s with a version read through its root",
				b.name, e.Env, b.module, b.mnt)
		}
		if !strings.HasSuffix(e.Patrol.Root, "/root") {
			t.Errorf("%s: patrol %+v: want it entered through /proc/PID/root", b.name, e.Patrol)
		}
		t.Logf("%s: %s %s, failing: %s", b.name, e.ID, e.Patrol.Outcome, failing(e.Patrol))
	}
	// The agent's own environment is not the broken ones.
	code, body := p.get(t, "/status")
	var self agent.Status
	if err := json.Unmarshal([]byte(body), &self); code != 200 || err != nil || self.LastPatrol == nil {
		t.Fatalf("/status %d: %v", code, err)
	}
	for _, r := range self.LastPatrol.Report.Results {
		if r.Status == "fail" {
			t.Errorf("the agent's own patrol: %s fails: %s", r.ID, r.Summary)
		}
	}

	// The CLI reruns the doctor in the broken environment by hand.
	broken := builds[0]
	out, err := exec.Command(binary, "check", "--env", broken.envID, "--state-dir", state, "--skip", "module.verify,proxy.tls").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "gocache.writable") {
		t.Errorf("check --env %s: %v, want exit 1 naming gocache.writable:\n%s", broken.envID, err, out)
	}
	cliOut := string(out)

	// The GOFLAGS fixed in the same namespace, user and module: a change
	// of that environment, naming the field, not its value.
	fixed := builds[1]
	nsenter := testgate.Tool(t, "nsenter", "util-linux")
	rebuild := exec.CommandContext(ctx, nsenter, "-t", fmt.Sprint(fixed.holder.Process.Pid), "-m", "--",
		"sh", "-c", `cd "$0" && exec "$@"`, fixed.module, setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", fixed.mnt+"/bin/gopatrolgo", "list", ".")
	rebuild.Dir = fixed.module
	for k, v := range fixed.vars {
		rebuild.Env = append(rebuild.Env, k+"="+v)
	}
	rebuild.Env = append(rebuild.Env, "GOFLAGS=-mod=mod", "SECRET_TOKEN="+envSecret)
	if out, err := rebuild.CombinedOutput(); err != nil {
		t.Fatalf("go list with the fixed GOFLAGS: %v: %s", err, out)
	}
	var change inventory.Change
	waitFor(t, time.Minute, "the GOFLAGS change", func() bool {
		for _, c := range p.envStatus(t).Changes {
			if c.Kind == inventory.Changed && c.Previous == fixed.envID {
				change = c
				return true
			}
		}
		return false
	})
	if strings.Join(change.Fields, ",") != "GOFLAGS" || strings.Contains(change.Describe(), "-mod=mod") {
		t.Errorf("change %+v: want the GOFLAGS field named, no value", change)
	}

	// A container that is gone cannot be entered: unreachable, never
	// healthy, in the agent and in the CLI.
	gone := builds[2]
	gone.stop()
	waitFor(t, 2*time.Minute, "the gone environment patrolled as unreachable", func() bool {
		for _, e := range p.envStatus(t).Environments {
			if e.ID == gone.envID && e.Patrol != nil && e.Patrol.Outcome == inventory.OutcomeUnreachable {
				return true
			}
		}
		return false
	})
	out, err = exec.Command(binary, "check", "--env", gone.envID, "--state-dir", state).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(string(out), "cannot be entered") {
		t.Errorf("check --env of a gone environment: %v, want exit 4 saying it cannot be entered:\n%s", err, out)
	}
	cliOut += string(out)
	// agent status reads the state file, which the agent writes a moment
	// after /status has the result.
	waitFor(t, 30*time.Second, "agent status showing the gone environment unreachable", func() bool {
		out, err = exec.Command(binary, "agent", "status", "--state-dir", state).CombinedOutput()
		return err == nil && strings.Contains(string(out), gone.envID) && strings.Contains(string(out), "unreachable")
	})
	cliOut += string(out)

	// Appearances are in the audit log; the secret is nowhere.
	lines, err := patrol.ReadAudit(patrol.AuditPath(state))
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, l := range lines {
		if l.Kind == agent.AuditEnvironment && l.Change == inventory.Changed && l.ID == change.ID {
			changed++
		}
	}
	if changed != 1 {
		t.Errorf("audit log has %d lines of the change to %s, want 1: %+v", changed, change.ID, lines)
	}
	for _, b := range builds {
		n := 0
		for _, l := range lines {
			if l.Kind == agent.AuditEnvironment && l.ID == b.envID && l.Change == inventory.Appeared {
				n++
			}
		}
		if n != 1 {
			t.Errorf("audit log has %d appearances of %s, want 1: %+v", n, b.envID, lines)
		}
	}
	_, statusBody := p.get(t, "/status")
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	outputs := map[string]string{"agent log": strings.Join(p.log(), "\n"), "/status": statusBody, "CLI": cliOut}
	filepath.WalkDir(state, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			outputs[path] = string(b)
		}
		return nil
	})
	for where, text := range outputs {
		if strings.Contains(text, envSecret) || strings.Contains(text, "SECRET_TOKEN") {
			t.Errorf("the unrelated variable reached %s", where)
		}
	}
}
