package soak

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// report is the run's figures, written beside its samples.
type report struct {
	Timeline       string        `json:"timeline"`
	ReadyIn        time.Duration `json:"ready_in_ns"`
	Builds         int           `json:"builds"`
	Execs          int           `json:"execs_at_receiver"`
	LostEvents     int           `json:"lost_events"`
	Opens          int           `json:"failing_opens"`
	ENOENT         int           `json:"enoent_at_receiver"`
	ExportFailures int           `json:"export_failures"`
	PluginKills    int           `json:"plugin_kills"`
	Restarts       int           `json:"plugin_restarts_logged"`
	BrokenConfigs  int           `json:"broken_configs"`
	BrokenRules    int           `json:"broken_rule_sets"`
	Notifications  int           `json:"notifications"`
	MaxDelay       time.Duration `json:"max_notification_delay_ns"`
	WarmRSS        int64         `json:"rss_after_warmup_bytes"`
	EndRSS         int64         `json:"rss_at_end_bytes"`
}

// writeRun writes the run into dir: samples.csv, events.csv, report.json
// and soak.png, the plot drawn from the samples.
func writeRun(dir string, j *journal, r report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j.mu.Lock()
	samples := append([]point(nil), j.samples...)
	events := append([]event(nil), j.events...)
	j.mu.Unlock()
	var sb, eb bytes.Buffer
	sw, ew := csv.NewWriter(&sb), csv.NewWriter(&eb)
	sw.Write([]string{"t_seconds", "rss_bytes", "cpu_seconds", "plugin_processes"})
	for _, s := range samples {
		sw.Write([]string{fmt.Sprintf("%.3f", s.T.Seconds()), fmt.Sprint(s.RSS), fmt.Sprintf("%.2f", s.CPU.Seconds()), fmt.Sprint(s.Probes)})
	}
	ew.Write([]string{"t_seconds", "event"})
	for _, e := range events {
		ew.Write([]string{fmt.Sprintf("%.3f", e.T.Seconds()), e.Kind})
	}
	sw.Flush()
	ew.Flush()
	rb, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	var pb bytes.Buffer
	if err := png.Encode(&pb, plot(samples, events)); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"samples.csv": sb.Bytes(), "events.csv": eb.Bytes(), "report.json": append(rb, '\n'), "soak.png": pb.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// The plot's size and colours.
const (
	plotW, plotH = 960, 560
	marginL      = 70
	marginR      = 20
	panelH       = 200
)

var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{0, 0, 0, 255}
	grey      = color.RGBA{200, 200, 200, 255}
	rssColour = color.RGBA{20, 90, 200, 255}
	cpuColour = color.RGBA{200, 60, 20, 255}
	// Outages are bands, point faults ticks.
	collectorBand = color.RGBA{255, 220, 220, 255}
	targetBand    = color.RGBA{215, 235, 255, 255}
	bothBand      = color.RGBA{235, 215, 245, 255}
	killTick      = color.RGBA{90, 90, 90, 255}
	hupTick       = color.RGBA{230, 140, 0, 255}
	opensTick     = color.RGBA{0, 150, 60, 255}
)

// plot draws the agent's RSS (top) and CPU share of a core (bottom) over
// the run, with the outages shaded and the point faults ticked.
func plot(samples []point, events []event) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fill(img, img.Bounds(), white)
	if len(samples) < 2 {
		return img
	}
	tmax := samples[len(samples)-1].T.Seconds()
	x := func(t float64) int { return marginL + int(t/tmax*float64(plotW-marginL-marginR)) }
	rss := make([]float64, len(samples))
	cpu := make([]float64, len(samples))
	for i, s := range samples {
		rss[i] = mib(s.RSS)
		if i > 0 {
			// Over a 5-sample window: the CPU counters tick at 10 ms.
			k := max(0, i-5)
			dt := (s.T - samples[k].T).Seconds()
			cpu[i] = 100 * (s.CPU - samples[k].CPU).Seconds() / dt
		}
	}
	panels := []struct {
		top    int
		title  string
		values []float64
		c      color.RGBA
	}{
		{40, "RSS MIB", rss, rssColour},
		{40 + panelH + 60, "CPU % OF A CORE", cpu, cpuColour},
	}
	for _, pn := range panels {
		bottom := pn.top + panelH
		bands(img, events, x, pn.top, bottom)
		ticks(img, events, x, bottom-12, bottom)
		ymax := 0.0
		for _, v := range pn.values {
			ymax = math.Max(ymax, v)
		}
		ymax = niceCeil(ymax * 1.1)
		y := func(v float64) int { return bottom - int(v/ymax*float64(panelH)) }
		for k := 0; k <= 5; k++ {
			v := ymax * float64(k) / 5
			hline(img, marginL, plotW-marginR, y(v), grey)
			text(img, 4, y(v)-5, fmt.Sprintf("%.0f", v), black)
		}
		vline(img, marginL, pn.top, bottom, black)
		hline(img, marginL, plotW-marginR, bottom, black)
		text(img, marginL, pn.top-16, pn.title, pn.c)
		for i := 1; i < len(samples); i++ {
			line(img, x(samples[i-1].T.Seconds()), y(pn.values[i-1]), x(samples[i].T.Seconds()), y(pn.values[i]), pn.c)
		}
		for k := 0; k <= 6; k++ {
			t := tmax * float64(k) / 6
			text(img, x(t)-8, bottom+6, fmt.Sprintf("%.0f", t), black)
		}
	}
	// The legend, under the panels.
	ly := plotH - 30
	lx := marginL
	for _, l := range []struct {
		name string
		c    color.RGBA
	}{{"COLLECTOR DOWN", collectorBand}, {"TARGET DOWN", targetBand}, {"PLUGIN KILL", killTick}, {"BROKEN SIGHUP", hupTick}, {"FAILING OPENS", opensTick}} {
		fill(img, image.Rect(lx, ly, lx+14, ly+10), l.c)
		text(img, lx+20, ly, l.name, black)
		lx += 20 + 8*len(l.name) + 30
	}
	text(img, plotW-marginR-80, ly, "TIME S", black)
	return img
}

// bands shades the collector's and the target's outages.
func bands(img *image.RGBA, events []event, x func(float64) int, top, bottom int) {
	span := func(down, up string) [][2]float64 {
		var out [][2]float64
		start := -1.0
		for _, e := range events {
			switch e.Kind {
			case down:
				start = e.T.Seconds()
			case up:
				if start >= 0 {
					out = append(out, [2]float64{start, e.T.Seconds()})
					start = -1
				}
			}
		}
		return out
	}
	col, tgt := span("collector down", "collector up"), span("target down", "target up")
	for xi := marginL + 1; xi < plotW-marginR; xi++ {
		inC, inT := false, false
		for _, s := range col {
			inC = inC || (xi >= x(s[0]) && xi <= x(s[1]))
		}
		for _, s := range tgt {
			inT = inT || (xi >= x(s[0]) && xi <= x(s[1]))
		}
		c := white
		switch {
		case inC && inT:
			c = bothBand
		case inC:
			c = collectorBand
		case inT:
			c = targetBand
		default:
			continue
		}
		vline(img, xi, top, bottom, c)
	}
}

func ticks(img *image.RGBA, events []event, x func(float64) int, top, bottom int) {
	for _, e := range events {
		// SIGHUPs above the kills: both come on the minute.
		var c color.RGBA
		y0, y1 := top, bottom
		switch e.Kind {
		case "plugin killed":
			c = killTick
		case "broken config", "broken rules":
			c, y0, y1 = hupTick, top-12, top-1
		case "opens start":
			c = opensTick
		default:
			continue
		}
		vline(img, x(e.T.Seconds()), y0, y1, c)
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// line draws from (x0,y0) to (x1,y1), two pixels thick, by Bresenham.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// glyphs is a 3x5 pixel font of what the plot writes: each glyph five
// rows of three bits, drawn at twice the size.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7},
	'4': {5, 5, 7, 1, 1}, '5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 2, 2},
	'8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7}, '.': {0, 0, 0, 0, 2}, '%': {5, 1, 2, 4, 5},
	'-': {0, 0, 7, 0, 0},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {7, 4, 4, 4, 7}, 'D': {6, 5, 5, 5, 6},
	'E': {7, 4, 6, 4, 7}, 'F': {7, 4, 6, 4, 4}, 'G': {7, 4, 5, 5, 7}, 'H': {5, 5, 7, 5, 5},
	'I': {7, 2, 2, 2, 7}, 'J': {1, 1, 1, 5, 7}, 'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7},
	'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5}, 'O': {7, 5, 5, 5, 7}, 'P': {7, 5, 7, 4, 4},
	'Q': {7, 5, 5, 7, 1}, 'R': {6, 5, 6, 5, 5}, 'S': {7, 4, 7, 1, 7}, 'T': {7, 2, 2, 2, 2},
	'U': {5, 5, 5, 5, 7}, 'V': {5, 5, 5, 5, 2}, 'W': {5, 5, 7, 7, 5}, 'X': {5, 5, 2, 5, 5},
	'Y': {5, 5, 2, 2, 2}, 'Z': {7, 1, 2, 4, 7},
}

// text writes s (upper case) with its top left at (x, y); a rune without
// a glyph is a space.
func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g := glyphs[r]
		for row := range 5 {
			for col := range 3 {
				if g[row]&(4>>col) != 0 {
					fill(img, image.Rect(x+2*col, y+2*row, x+2*col+2, y+2*row+2), c)
				}
			}
		}
		x += 8
	}
}

// The plot is drawn from its data: a series that climbs is drawn
// climbing, the outage's band where it was, the digits legible.
func TestPlotDrawsTheData(t *testing.T) {
	var samples []point
	for i := range 100 {
		samples = append(samples, point{T: time.Duration(i) * time.Second, RSS: int64(10+i) << 20, CPU: time.Duration(i) * 100 * time.Millisecond})
	}
	events := []event{{20 * time.Second, "collector down"}, {40 * time.Second, "collector up"}, {60 * time.Second, "plugin killed"}}
	img := plot(samples, events)
	xOf := func(s float64) int { return marginL + int(s/99*float64(plotW-marginL-marginR)) }
	// The RSS line: its pixel row at 10 s is below (larger y) its row at 90 s.
	row := func(xp int) int {
		for y := 40; y <= 40+panelH; y++ {
			if img.RGBAAt(xp, y) == rssColour {
				return y
			}
		}
		return -1
	}
	early, late := row(xOf(10)), row(xOf(90))
	if early < 0 || late < 0 || late >= early {
		t.Errorf("RSS line rows: %d at 10 s, %d at 90 s; want it climbing", early, late)
	}
	if got := img.RGBAAt(xOf(30), 45); got != collectorBand {
		t.Errorf("at 30 s (inside the outage) the band is %v, want %v", got, collectorBand)
	}
	if got := img.RGBAAt(xOf(50), 45); got == collectorBand {
		t.Error("at 50 s (after the outage) the band is still drawn")
	}
	if got := img.RGBAAt(xOf(60), 40+panelH-2); got != killTick {
		t.Errorf("no kill tick at 60 s: %v", got)
	}
	// The y axis's "0" of the RSS panel: the glyph's 12 set cells.
	ink := 0
	for y := 40 + panelH - 5; y < 40+panelH+5; y++ {
		for x := 4; x < 10; x++ {
			if img.RGBAAt(x, y) == black {
				ink++
			}
		}
	}
	if ink != 12*4 {
		t.Errorf("the axis label 0 has %d black pixels, want %d", ink, 12*4)
	}
	// And the run's files are written from the same data.
	dir := t.TempDir()
	j := &journal{samples: samples, events: events}
	if err := writeRun(dir, j, report{Builds: 3}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "soak.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("soak.png: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "samples.csv"))
	if lines := strings.Count(string(b), "\n"); lines != len(samples)+1 {
		t.Errorf("samples.csv has %d lines, want %d", lines, len(samples)+1)
	}
}
