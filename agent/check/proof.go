package check

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopatrol/gopatrol/internal/atomicfile"
)

// DefaultProofTTL is how long a kept proof stands at most when Proofs.TTL
// is zero (each stands between half of it and all of it, see standsFor).
// It bounds how late the doctor can be about a change that its
// fingerprint does not see (an edit inside a file of GOROOT/src, a broken
// library of the C compiler): the agent re-proves at least this often.
const DefaultProofTTL = 30 * time.Minute

// Proofs keeps the passing results of the checks that prove the toolchain
// by running it (Check.Proves: go run, a cgo build, a PIE build, go tool
// compile). Those go commands are most of the doctor's CPU, while what
// their outcome depends on can be fingerprinted in a few milliseconds
// (ProofInputs): the go binary and GOROOT, go env, the environment, the C
// toolchain, the mounts, the boot. A kept proof stands for a later run while every input
// is unchanged, for at most TTL. Only a pass is kept: a failure or a
// warning is proved again on every run, and so is everything after a
// change, a reboot or a fix.
//
// Proofs are files in Dir named by the hash of their inputs, so that the
// many environments of the agent each keep their own. A file is trusted
// only when Dir and the file belong to this process's user and nobody
// else may write them.
type Proofs struct {
	Dir string
	// TTL is how long a proof stands at most (DefaultProofTTL when
	// zero); each stands between TTL/2 and TTL.
	TTL time.Duration
	// Now is the clock (time.Now when nil), for tests.
	Now func() time.Time
	// WalkReuse is how long the fingerprint of a GOROOT's standard
	// library, its largest part, is reused for other fingerprints of the
	// same GOROOT (0: walked for each). The agent's round over many
	// environments that share a GOROOT sets it: as if they were all
	// fingerprinted within a few seconds.
	WalkReuse time.Duration

	walksOnce sync.Once
	walks     *stdWalks
}

// inputs is the fingerprint of env, reusing walks per WalkReuse.
func (p *Proofs) inputs(env *Env) inputs {
	if p == nil {
		return proofInputs(env, nil)
	}
	p.walksOnce.Do(func() { p.walks = &stdWalks{reuse: p.WalkReuse} })
	return proofInputs(env, p.walks)
}

// proofFile is what a proof file holds: no environment value, only what
// the check reported (as the JSON report would) and when.
type proofFile struct {
	Check    string            `json:"check"`
	ProvedAt time.Time         `json:"proved_at"`
	Summary  string            `json:"summary"`
	Evidence map[string]string `json:"evidence,omitempty"`
}

func (p *Proofs) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Proofs) ttl() time.Duration {
	if p.TTL > 0 {
		return p.TTL
	}
	return DefaultProofTTL
}

// WitnessedFor is how many TTLs a proof stands at most while the
// toolchain it ran on is proved again within each TTL by another
// environment (see lookup); each stands between half of that and all of
// it.
const WitnessedFor = 8

// key names the proof of check id over inputs.
func proofKey(id string, inputs [32]byte) string {
	h := sha256.New()
	h.Write(inputs[:])
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil))
}

// witnessKey names the newest proof of check id on a toolchain, in any
// environment.
func witnessKey(id string, toolchain [32]byte) string {
	return "w-" + proofKey(id+"\x00witness", toolchain)
}

// lookup returns the kept proof of id over in, if it still stands. It
// stands while its inputs are unchanged, for TTL. The TTL bounds how late
// the doctor is about a change that the fingerprint does not see: an edit
// inside a file of GOROOT, a broken library of the C compiler. Most of
// those are changes to the toolchain, which every environment using it
// shares; the one unseen input of an environment's own, the contents of
// its GOCACHE (a corrupt entry), waits up to WitnessedFor TTLs. So once
// its own TTL is over, a proof still stands (up to WitnessedFor
// TTLs) while the same check passed on the same toolchain files, in
// another environment, within the TTL: the agent's 50 environments of
// one GOROOT then re-prove that toolchain about once per TTL between
// them, instead of 50 times, and each environment its own variables,
// directories and user every few hours. A check that fails on the
// toolchain writes no witness, so every environment proves again within
// a TTL of the last pass, as it would alone.
func (p *Proofs) lookup(id string, in inputs) (Result, bool) {
	if !p.trusted() {
		return Result{}, false
	}
	key := proofKey(id, in.all)
	f, ok := p.read(key, id)
	if !ok {
		return Result{}, false
	}
	now := p.now()
	age, stands := now.Sub(f.ProvedAt), standsFor(p.ttl(), key)
	if age < 0 {
		return Result{}, false
	}
	why := fmt.Sprintf("it stands for %s", stands.Round(time.Second))
	if age >= stands {
		longest := standsFor(WitnessedFor*p.ttl(), key)
		if age >= longest {
			return Result{}, false
		}
		wkey := witnessKey(id, in.toolchain)
		w, ok := p.read(wkey, id)
		wage := now.Sub(w.ProvedAt)
		if !ok || wage < 0 || wage >= standsFor(p.ttl(), wkey) {
			return Result{}, false
		}
		why = fmt.Sprintf("the same toolchain files passed this check again %s ago (in this or another environment), so it stands for up to %s",
			wage.Round(time.Second), longest.Round(time.Second))
	}
	r := Passf("%s (proved %s ago; its inputs are unchanged)", f.Summary, age.Round(time.Second))
	for k, v := range f.Evidence {
		r = r.With(k, v)
	}
	r.ProvedAt = f.ProvedAt
	return r.With("proof", fmt.Sprintf("kept from %s: the go binary, GOROOT, go env, the environment, the C toolchain, the mounts and the boot are as they were then; %s (--fresh proves again)", f.ProvedAt.UTC().Format(time.RFC3339), why)), true
}

// read is the proof file named key, of check id, if it is a trusted one.
func (p *Proofs) read(key, id string) (proofFile, bool) {
	path := filepath.Join(p.Dir, key+".json")
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || !ownedAndPrivate(fi) || fi.Size() > 1<<20 {
		return proofFile{}, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return proofFile{}, false
	}
	var f proofFile
	if json.Unmarshal(data, &f) != nil || f.Check != id {
		return proofFile{}, false
	}
	return f, true
}

// standsFor is how long the proof named key stands: between ttl/2 and
// ttl, by the key's first 16 bits. The agent proves its environments in
// one round after a start; were every proof to stand exactly ttl, all of
// them would fall due in one later round again, and that round would
// cost what the first did. Spread by the hash that names them, they fall
// due over many.
func standsFor(ttl time.Duration, key string) time.Duration {
	n, _ := strconv.ParseUint(key[:4], 16, 16)
	return ttl/2 + time.Duration(float64(n)/(1<<16)*float64(ttl/2))
}

// keep records a passing result of id over in, as the proof of its
// inputs and as the newest witness of its toolchain, and forgets the
// proofs that no longer stand. A failure to write only costs the next run
// its proof, so it is returned for the log and nothing else.
func (p *Proofs) keep(id string, in inputs, r Result) error {
	if r.Status != Pass {
		return nil
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("keep the proof of %s: %w", id, err)
	}
	if !p.trusted() {
		return fmt.Errorf("keep the proof of %s: %s is not this user's own private directory; proofs are not kept there", id, p.Dir)
	}
	// How long a cold cache took is news of that run, not of the proof.
	ev := maps.Clone(r.Evidence)
	delete(ev, "cold cache")
	at := p.now()
	data, err := json.Marshal(proofFile{Check: id, ProvedAt: at, Summary: r.Summary, Evidence: ev})
	if err != nil {
		return fmt.Errorf("keep the proof of %s: %w", id, err)
	}
	for _, key := range []string{proofKey(id, in.all), witnessKey(id, in.toolchain)} {
		path := filepath.Join(p.Dir, key+".json")
		if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("keep the proof of %s: %w", id, err)
		}
		// The file's time is the proof's, on the clock forgetExpired reads.
		if err := os.Chtimes(path, at, at); err != nil {
			return fmt.Errorf("keep the proof of %s: %w", id, err)
		}
	}
	p.forgetExpired()
	return nil
}

// forgetExpired removes proof files older than any proof stands, so that
// the environments and toolchains of the past do not pile up.
func (p *Proofs) forgetExpired() {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return
	}
	cutoff := p.now().Add(-WitnessedFor * p.ttl())
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(p.Dir, e.Name()))
		}
	}
}

// trusted reports whether Dir is this user's own directory that nobody
// else may write: a proof planted by another user would make the doctor
// pass a toolchain it never ran.
func (p *Proofs) trusted() bool {
	fi, err := os.Lstat(p.Dir)
	return err == nil && fi.IsDir() && ownedAndPrivate(fi)
}

func ownedAndPrivate(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == uint32(os.Geteuid()) && fi.Mode().Perm()&0o022 == 0
}

// UserProofs returns the proofs of the invoking user, kept in their cache
// directory ($XDG_CACHE_HOME/gopatrol/proofs, else
// ~/.cache/gopatrol/proofs).
func UserProofs() (*Proofs, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("no directory for proofs: %w", err)
	}
	return &Proofs{Dir: filepath.Join(dir, "gopatrol", "proofs")}, nil
}
