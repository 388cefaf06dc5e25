package metricdef

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/bpf"
)

// The documented file classes are exactly what the sensor emits: every
// class bpf names, no more, no fewer; and docs/metrics.md lists the same.
func TestFileClassesAreWhatTheSensorEmits(t *testing.T) {
	var emitted []string
	// Class is a uint16 the kernel fills; the names bpf knows are the
	// ones not printed as classN.
	for c := range 1 << 16 {
		if s := bpf.Class(c).String(); !strings.HasPrefix(s, "class") {
			emitted = append(emitted, s)
		}
	}
	slices.Sort(emitted)
	documented := slices.Sorted(slices.Values(FileClasses))
	if !slices.Equal(emitted, documented) {
		t.Errorf("bpf emits file classes %v\nmetricdef.FileClasses   %v", emitted, documented)
	}
	for _, c := range FileClasses {
		if c != strings.ToLower(c) {
			t.Errorf("file class %q: not lower-case", c)
		}
	}

	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `gopatrol\\.file\\.class` \\| (.*)$").FindSubmatch(doc)
	if row == nil {
		t.Fatal("docs/metrics.md: no attribute-values row for gopatrol.file.class")
	}
	values, _, _ := strings.Cut(string(row[1]), ":")
	var inDoc []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(values, -1) {
		inDoc = append(inDoc, m[1])
	}
	if !slices.Equal(inDoc, FileClasses) {
		t.Errorf("docs/metrics.md file classes %v, catalogue %v", inDoc, FileClasses)
	}
	if !strings.Contains(SpecFileAccessFailures.Description, "("+strings.Join(FileClasses, ", ")+")") {
		t.Errorf("%s description does not list %v: %q", SpecFileAccessFailures.Name, FileClasses, SpecFileAccessFailures.Description)
	}
}
