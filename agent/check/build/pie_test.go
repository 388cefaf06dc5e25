package build

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

func TestPIEBuildPasses(t *testing.T) {
	w := checktest.New(t)
	res := w.Run(checktest.Find(t, Checks(), "build.pie-aslr"))
	if res.Status != check.Pass {
		t.Fatalf("status %s, want pass", res.Status)
	}
	if res.Evidence["elf_type"] != "ET_DYN" || res.Evidence["randomize_va_space"] != "2" {
		t.Errorf("evidence %v: want elf_type ET_DYN and randomize_va_space 2", res.Evidence)
	}
}

// A real non-PIE build goes through the same check and fails, naming the
// executable and its ELF type.
func TestNonPIEBuildFails(t *testing.T) {
	w := checktest.New(t)
	res := w.Run(pieCheck("exe"))
	if res.Status != check.Fail {
		t.Fatalf("status %s, want fail", res.Status)
	}
	if !checktest.EvidenceContains(res, "ET_EXEC") || res.Evidence["executable"] == "" {
		t.Errorf("evidence %v does not name the ET_EXEC executable", res.Evidence)
	}
	// How the user's binaries are built is theirs to change: the fix
	// says so rather than name a command the harness could run.
	if checktest.FixRerun(t, w, pieCheck("exe"), res) {
		t.Errorf("fix %q was applied, but the build flags of the user's binaries are not the harness's to change", res.Fix)
	}
}

// elfType on binaries built by the real go command, side by side.
func TestELFTypeOfRealBuilds(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	checktest.WriteFile(t, src, "package main\n\nfunc main() {}\n", 0o644)
	for _, tc := range []struct {
		mode string
		want elf.Type
	}{{"exe", elf.ET_EXEC}, {"pie", elf.ET_DYN}} {
		out := filepath.Join(dir, tc.mode)
		cmd := exec.Command(checktest.RealGo(t), "build", "-buildmode="+tc.mode, "-o", out, src)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GOFLAGS=", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -buildmode=%s: %v\n%s", tc.mode, err, b)
		}
		got, err := elfType(out)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("-buildmode=%s: %s, want %s", tc.mode, got, tc.want)
		}
	}
}

func TestPIEVerdict(t *testing.T) {
	for _, tc := range []struct {
		name         string
		typ          elf.Type
		aslr         string
		addr1, addr2 string
		want         check.Status
	}{
		{"pie full aslr", elf.ET_DYN, "2", "0x1", "0x2", check.Pass},
		{"not pie", elf.ET_EXEC, "2", "0x1", "0x1", check.Fail},
		{"aslr off", elf.ET_DYN, "0", "0x1", "0x1", check.Fail},
		{"no brk randomization", elf.ET_DYN, "1", "0x1", "0x2", check.Warn},
		{"unreadable", elf.ET_DYN, "", "0x1", "0x2", check.Warn},
		{"personality no-randomize", elf.ET_DYN, "2", "0x5555", "0x5555", check.Warn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := pieVerdict("pie", tc.typ, tc.aslr, tc.addr1, tc.addr2)
			if res.Status != tc.want {
				t.Errorf("status %s (%s), want %s", res.Status, res.Summary, tc.want)
			}
			if res.Status != check.Pass && res.Fix == "" {
				t.Errorf("%s without a fix", res.Status)
			}
		})
	}
}
