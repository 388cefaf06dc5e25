package patrol

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Threshold decides whether a value breaches. Static thresholds compare
// with fixed bounds; an ewma threshold compares with a baseline learned
// from the values themselves (see EWMA).
type Threshold struct {
	Op   string // gt ge lt le eq ne between outside ewma
	A, B float64
	// Alpha and K of an ewma threshold: the weight of a new sample, and how
	// many standard deviations from the mean count as a breach.
	Alpha, K float64
}

var thresholdRE = regexp.MustCompile(`^\s*([a-z]+)\s*\((.*)\)\s*$`)

// ParseThreshold parses gt(x), ge(x), lt(x), le(x), eq(x), ne(x),
// between(a,b), outside(a,b) and ewma(alpha=…, k=…).
func ParseThreshold(s string) (Threshold, error) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return Threshold{}, fmt.Errorf("%q: want gt(x), ge(x), lt(x), le(x), eq(x), ne(x), between(a,b), outside(a,b) or ewma(alpha=0.3,k=3)", s)
	}
	op, args := m[1], strings.Split(m[2], ",")
	t := Threshold{Op: op}
	num := func(a string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
		if err != nil || math.IsNaN(f) {
			return 0, fmt.Errorf("%q: %q is not a number", s, strings.TrimSpace(a))
		}
		return f, nil
	}
	var err error
	switch op {
	case "gt", "ge", "lt", "le", "eq", "ne":
		if len(args) != 1 {
			return t, fmt.Errorf("%q: %s takes one number", s, op)
		}
		t.A, err = num(args[0])
	case "between", "outside":
		if len(args) != 2 {
			return t, fmt.Errorf("%q: %s takes two numbers, low and high", s, op)
		}
		if t.A, err = num(args[0]); err == nil {
			t.B, err = num(args[1])
		}
		if err == nil && t.A > t.B {
			err = fmt.Errorf("%q: the low bound %g is above the high bound %g", s, t.A, t.B)
		}
	case "ewma":
		t.Alpha, t.K = 0.3, 3
		for _, a := range args {
			if strings.TrimSpace(a) == "" {
				continue
			}
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return t, fmt.Errorf("%q: ewma takes named arguments alpha=… and k=…", s)
			}
			f, e := num(v)
			if e != nil {
				return t, e
			}
			switch strings.TrimSpace(k) {
			case "alpha":
				if f <= 0 || f > 1 {
					return t, fmt.Errorf("%q: alpha %g must be in (0, 1]", s, f)
				}
				t.Alpha = f
			case "k":
				if f <= 0 {
					return t, fmt.Errorf("%q: k %g must be positive", s, f)
				}
				t.K = f
			default:
				return t, fmt.Errorf("%q: ewma has no argument %q (alpha, k)", s, strings.TrimSpace(k))
			}
		}
	default:
		return t, fmt.Errorf("%q: unknown operator %q; use gt, ge, lt, le, eq, ne, between, outside or ewma", s, op)
	}
	return t, err
}

// Dynamic reports whether the threshold follows a baseline.
func (t Threshold) Dynamic() bool { return t.Op == "ewma" }

// Breached reports whether v breaches a static threshold.
func (t Threshold) Breached(v float64) bool {
	switch t.Op {
	case "gt":
		return v > t.A
	case "ge":
		return v >= t.A
	case "lt":
		return v < t.A
	case "le":
		return v <= t.A
	case "eq":
		return v == t.A
	case "ne":
		return v != t.A
	case "between":
		return v >= t.A && v <= t.B
	case "outside":
		return v < t.A || v > t.B
	}
	return false
}

// EWMA is an exponentially weighted mean and variance. It is the state of a
// dynamic baseline, kept per rule and label set and persisted.
type EWMA struct {
	Mean float64 `json:"mean"`
	Var  float64 `json:"var"`
	N    int     `json:"n"`
}

// Band is the baseline's mean ± k·σ.
func (e EWMA) Band(k float64) (lo, hi float64) {
	d := k * math.Sqrt(e.Var)
	return e.Mean - d, e.Mean + d
}

// Observe judges v against the baseline as it was before v, then folds v
// in. Before warmup samples it never breaches. A breaching value is still
// folded in, so a lasting shift becomes the new normal (the drift the
// source wants) instead of alarming forever.
func (e *EWMA) Observe(v, alpha, k float64, warmup int) (breach bool) {
	if e.N >= warmup {
		lo, hi := e.Band(k)
		breach = v < lo || v > hi
	}
	if e.N == 0 {
		e.Mean, e.Var = v, 0
	} else {
		// West's incremental form of the exponentially weighted variance.
		d := v - e.Mean
		incr := alpha * d
		e.Mean += incr
		e.Var = (1 - alpha) * (e.Var + d*incr)
	}
	e.N++
	return breach
}
