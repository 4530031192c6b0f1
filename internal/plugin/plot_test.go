package plugin

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden picture (testdata/plot.png) and the README's (docs/kubectl-train-plot.png)")

const (
	goldenPlot = "testdata/plot.png"
	// readmePlot is the picture of `kubectl train plot` in the README, drawn from the same history.
	readmePlot = "../../docs/kubectl-train-plot.png"
	goldenName = "TrainingJob default/fashion-mnist"
	// A pixel differs when one of its channels differs by more than channelSlack (of 65535); a
	// picture matches when at most maxDiffering pixels differ. Font rasterising may move a few
	// anti-aliased edge pixels between machines; a moved, missing or recoloured curve changes
	// thousands.
	channelSlack = 16 << 8
	maxDiffering = 50
)

// TestPlotMatchesGolden draws the fixed history and compares the picture, pixel by pixel, with the
// golden one. Run with -update to redraw it (and the README's), then look at it.
func TestPlotMatchesGolden(t *testing.T) {
	var got bytes.Buffer
	if err := writePlot(&got, "png", goldenName, goldenHistory()); err != nil {
		t.Fatal(err)
	}
	if *update {
		for _, f := range []string{goldenPlot, readmePlot} {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []string{goldenPlot, readmePlot} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/plugin -run TestPlotMatchesGolden -update to draw it)", err)
			}
			if msg := comparePictures(decode(t, want), decode(t, got.Bytes())); msg != "" {
				out := filepath.Join(t.TempDir(), "got.png")
				_ = os.WriteFile(out, got.Bytes(), 0o644)
				t.Errorf("the plot differs from %s: %s; it drew %s (if the change is meant, rerun with -update and look at it)", f, msg, out)
			}
		})
	}
}

// TestComparePicturesSeesAMovedPoint guards the golden test's tolerance: a curve with one point
// moved must not pass for the golden one.
func TestComparePicturesSeesAMovedPoint(t *testing.T) {
	h := goldenHistory()
	var full, moved bytes.Buffer
	if err := writePlot(&full, "png", goldenName, h); err != nil {
		t.Fatal(err)
	}
	// The same history with the last epoch's test accuracy moved by 0.02: one curve segment moves.
	h[len(h)-1].TestAccuracy -= 0.02
	if err := writePlot(&moved, "png", goldenName, h); err != nil {
		t.Fatal(err)
	}
	if msg := comparePictures(decode(t, full.Bytes()), decode(t, moved.Bytes())); msg == "" {
		t.Error("moving one point of the test accuracy by 0.02 went unnoticed")
	}
	if msg := comparePictures(decode(t, full.Bytes()), decode(t, full.Bytes())); msg != "" {
		t.Errorf("a picture differs from itself: %s", msg)
	}
}

func TestPlotSVG(t *testing.T) {
	var b bytes.Buffer
	if err := writePlot(&b, "svg", goldenName, goldenHistory()); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML whose text is the title, the axes' labels and the legend.
	var texts []string
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(tok)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{goldenName, "accuracy", "loss", "epoch", "train accuracy", "test accuracy", "10"} {
		if !strings.Contains("|"+all+"|", "|"+want+"|") {
			t.Errorf("the SVG has no text %q; its texts: %s", want, all)
		}
	}
}

func TestImageFormat(t *testing.T) {
	cases := map[string]struct {
		file, want, wantErr string
	}{
		"png":             {file: "out/curves.png", want: "png"},
		"svg, upper case": {file: "CURVES.SVG", want: "svg"},
		"pdf":             {file: "curves.pdf", wantErr: "cannot draw curves.pdf: the file must end in .png or .svg"},
		"no extension":    {file: "curves", wantErr: "cannot draw curves: the file must end in .png or .svg"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := imageFormat(tc.file)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tc.want || gotErr != tc.wantErr {
				t.Errorf("imageFormat(%q) = %q, %q; want %q, %q", tc.file, got, gotErr, tc.want, tc.wantErr)
			}
		})
	}
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding a PNG: %v", err)
	}
	return img
}

// comparePictures says how two pictures differ, or "" when they match.
func comparePictures(want, got image.Image) string {
	if want.Bounds() != got.Bounds() {
		return "size " + got.Bounds().String() + ", want " + want.Bounds().String()
	}
	differing := 0
	for y := want.Bounds().Min.Y; y < want.Bounds().Max.Y; y++ {
		for x := want.Bounds().Min.X; x < want.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := want.At(x, y).RGBA()
			r2, g2, b2, a2 := got.At(x, y).RGBA()
			if far(r1, r2) || far(g1, g2) || far(b1, b2) || far(a1, a2) {
				differing++
			}
		}
	}
	if differing > maxDiffering {
		return fmt.Sprintf("%d pixels differ (at most %d may)", differing, maxDiffering)
	}
	return ""
}

func far(a, b uint32) bool { return max(a, b)-min(a, b) > channelSlack }
