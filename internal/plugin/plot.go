package plugin

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// The size of a drawn plot: 768x576 pixels at vgimg's 96 dpi.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 6 * vg.Inch
)

// The colours of the curves: train and test accuracy, loss.
var (
	colorTrain = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colorTest  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colorLoss  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
)

func newPlotCommand(o *options) *cobra.Command {
	var file string
	var width int
	cmd := &cobra.Command{
		Use:   "plot NAME",
		Short: "Draw a TrainingJob's accuracy and loss curves",
		Long: "Draw a TrainingJob's accuracy and loss curves from status.history: a compact chart in the\n" +
			"terminal, and with -o a picture, PNG or SVG by the file's extension.",
		Example: "  kubectl train plot fashion-mnist\n  kubectl train plot fashion-mnist -o curves.png\n  kubectl train plot fashion-mnist -o curves.svg",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format := ""
			if file != "" {
				var err error
				if format, err = imageFormat(file); err != nil {
					return err
				}
			}
			_, tj, err := o.job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(tj.Status.History) == 0 {
				return fmt.Errorf("%s has no completed epoch yet: nothing to plot", jobName(tj))
			}
			fmt.Fprint(o.streams.Out, terminalChart(tj.Status.History, width))
			if file == "" {
				return nil
			}
			if err := savePlot(file, format, plotTitle(tj), tj.Status.History); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "wrote %s\n", file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "output", "o", "", "Also draw the curves into this file: .png or .svg.")
	cmd.Flags().IntVar(&width, "width", 60, "Width of the terminal chart's plotting area, in characters.")
	return cmd
}

func plotTitle(tj *kubetrainv1alpha1.TrainingJob) string {
	return fmt.Sprintf("TrainingJob %s/%s", tj.Namespace, tj.Name)
}

// imageFormat is the picture format a file's extension asks for.
func imageFormat(file string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(file)); ext {
	case ".png", ".svg":
		return ext[1:], nil
	default:
		return "", fmt.Errorf("cannot draw %s: the file must end in .png or .svg", file)
	}
}

// savePlot writes the curves into file, replacing it only once the picture is complete.
func savePlot(file, format, title string, h []kubetrainv1alpha1.EpochMetrics) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writePlot(tmp, format, title, h); err != nil {
		tmp.Close()
		return fmt.Errorf("drawing %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// writePlot draws the accuracy curves above the loss curve, on a shared epoch axis, as a PNG or an
// SVG.
func writePlot(w io.Writer, format, title string, h []kubetrainv1alpha1.EpochMetrics) error {
	acc, loss, err := plots(title, h)
	if err != nil {
		return err
	}
	var canvas vg.CanvasWriterTo
	switch format {
	case "png":
		canvas = vgimg.PngCanvas{Canvas: vgimg.New(plotWidth, plotHeight)}
	case "svg":
		canvas = vgsvg.New(plotWidth, plotHeight)
	default:
		return fmt.Errorf("unknown picture format %q: want png or svg", format)
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(12)}
	cells := plot.Align([][]*plot.Plot{{acc}, {loss}}, tiles, dc)
	acc.Draw(cells[0][0])
	loss.Draw(cells[1][0])
	_, err = canvas.WriteTo(w)
	return err
}

// plots are the two panels: train and test accuracy (0 to 1), and the training loss.
func plots(title string, h []kubetrainv1alpha1.EpochMetrics) (acc, loss *plot.Plot, err error) {
	series := func(f func(kubetrainv1alpha1.EpochMetrics) float64) plotter.XYs {
		xys := make(plotter.XYs, len(h))
		for i, m := range h {
			xys[i] = plotter.XY{X: float64(m.Epoch), Y: f(m)}
		}
		return xys
	}
	acc = plot.New()
	acc.Title.Text = title
	acc.Y.Label.Text = "accuracy"
	// From the tenth below the lowest accuracy to 1: the curves fill the panel, and the axis
	// still ends where a perfect model would.
	acc.Y.Min, acc.Y.Max = accuracyFloor(h), 1
	acc.Legend.Top, acc.Legend.Left = false, false
	acc.Legend.XOffs, acc.Legend.YOffs = -vg.Points(8), vg.Points(6)
	loss = plot.New()
	loss.X.Label.Text = "epoch"
	loss.Y.Label.Text = "loss"
	loss.Y.Min = 0
	loss.Legend.Top = true
	loss.Legend.XOffs, loss.Legend.YOffs = -vg.Points(8), -vg.Points(4)
	for _, p := range []*plot.Plot{acc, loss} {
		p.Add(plotter.NewGrid())
		p.X.Tick.Marker = epochTicks{}
	}
	add := func(p *plot.Plot, name string, c color.Color, f func(kubetrainv1alpha1.EpochMetrics) float64) error {
		line, points, err := plotter.NewLinePoints(series(f))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		line.Color, line.Width = c, vg.Points(1.5)
		points.Color, points.Shape, points.Radius = c, draw.CircleGlyph{}, vg.Points(2)
		p.Add(line, points)
		p.Legend.Add(name, line, points)
		return nil
	}
	for _, s := range []struct {
		p    *plot.Plot
		name string
		c    color.Color
		f    func(kubetrainv1alpha1.EpochMetrics) float64
	}{
		{acc, "train accuracy", colorTrain, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.TrainAccuracy }},
		{acc, "test accuracy", colorTest, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.TestAccuracy }},
		{loss, "loss", colorLoss, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.Loss }},
	} {
		if err := add(s.p, s.name, s.c, s.f); err != nil {
			return nil, nil, err
		}
	}
	// One epoch or several, the x axis spans whole epochs with a little room on either side.
	lo, hi := float64(h[0].Epoch), float64(h[len(h)-1].Epoch)
	for _, p := range []*plot.Plot{acc, loss} {
		p.X.Min, p.X.Max = lo-0.5, hi+0.5
	}
	return acc, loss, nil
}

// accuracyFloor is the tenth at or below the lowest accuracy of the history.
func accuracyFloor(h []kubetrainv1alpha1.EpochMetrics) float64 {
	lo := 1.0
	for _, m := range h {
		lo = min(lo, m.TrainAccuracy, m.TestAccuracy)
	}
	return max(0, math.Floor(lo*10-1e-9)/10)
}

// labelEveryEpoch is the longest run whose every epoch is labelled on the x axis.
const labelEveryEpoch = 20

// epochTicks marks whole epochs only (the default ticker labels 2.5 on a short run): every epoch
// of a short run, else the default's whole ones.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi-lo <= labelEveryEpoch+1 {
		var ticks []plot.Tick
		for e := math.Ceil(lo); e <= hi; e++ {
			ticks = append(ticks, plot.Tick{Value: e, Label: strconv.Itoa(int(e))})
		}
		return ticks
	}
	var ticks []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Label == "" || t.Value == math.Trunc(t.Value) {
			ticks = append(ticks, t)
		}
	}
	return ticks
}
