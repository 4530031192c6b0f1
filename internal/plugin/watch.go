package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// barWidth is the width of a progress bar in characters.
const barWidth = 24

func newWatchCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "watch NAME",
		Short: "Follow a TrainingJob epoch by epoch until it finishes",
		Long: "Follow a TrainingJob until it succeeds or fails: a line per completed epoch with its loss, accuracy\n" +
			"and images/s, and on a terminal a live bar for the epoch under way with the time the job has left\n" +
			"(from the median epoch so far). Exits 0 when the job succeeds and 1 when it fails; Ctrl-C stops\n" +
			"following, not the job.",
		Example: "  kubectl train watch fashion-mnist",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.newClient()
			if err != nil {
				return err
			}
			f := &follower{out: o.streams.Out, live: isTerminal(o.streams.Out)}
			return follow(cmd.Context(), c, ns, args[0], f)
		},
	}
}

// follow watches one job and feeds every state of it to f until it finishes.
func follow(ctx context.Context, c client.WithWatch, ns, name string, f *follower) error {
	var tick <-chan time.Time
	if f.live {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		// (Re)start from a fresh read: at the start, and when the watch ends (the API server ends
		// watches after a while) or its resource version is too old.
		tj, err := getJob(ctx, c, ns, name)
		if err != nil {
			return err
		}
		if done, err := f.update(tj, time.Now()); done {
			return err
		}
		w, err := c.Watch(ctx, &kubetrainv1alpha1.TrainingJobList{}, &client.ListOptions{
			Namespace:     ns,
			FieldSelector: fields.OneTermEqualSelector("metadata.name", name),
			Raw:           &metav1.ListOptions{ResourceVersion: tj.ResourceVersion},
		})
		if err != nil {
			return apiError(err, fmt.Sprintf("watching trainingjob %q in namespace %q", name, ns))
		}
		done, err := f.watch(ctx, w, tj, tick)
		w.Stop()
		if done {
			return err
		}
	}
}

// watch consumes one watch; done says whether following is over (err is then the result).
func (f *follower) watch(ctx context.Context, w watch.Interface, tj *kubetrainv1alpha1.TrainingJob, tick <-chan time.Time) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			f.endLive()
			return true, nil
		case now := <-tick:
			f.redraw(tj, now)
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				f.endLive()
				return true, fmt.Errorf("%s was deleted", jobName(tj))
			}
			next, isJob := ev.Object.(*kubetrainv1alpha1.TrainingJob)
			if !isJob {
				continue
			}
			tj = next
			if done, err := f.update(tj, time.Now()); done {
				return true, err
			}
		}
	}
}

// follower renders the states of a job as they come: a line per completed epoch and per phase,
// and, on a terminal (live), a bar for the epoch under way that is redrawn in place.
type follower struct {
	out io.Writer
	// live redraws the current epoch's bar in place; off when the output is not a terminal.
	live bool

	started   bool
	lastEpoch int32
	lastPhase kubetrainv1alpha1.Phase
	liveShown bool
}

// update renders a new state of the job; done says whether it finished, and err is non-nil when
// it failed.
func (f *follower) update(tj *kubetrainv1alpha1.TrainingJob, now time.Time) (done bool, err error) {
	f.endLive()
	if !f.started {
		f.started = true
		fmt.Fprintf(f.out, "%s: %s epochs\n", jobName(tj), epochText(tj))
		// Epochs finished before we started following are summed up, not replayed.
		if p := tj.Status.Progress; p != nil {
			f.lastEpoch = p.Epoch
		}
	}
	for _, m := range tj.Status.History {
		if m.Epoch > f.lastEpoch {
			fmt.Fprintln(f.out, epochLine(tj, m))
			f.lastEpoch = m.Epoch
		}
	}
	if tj.Status.Phase != f.lastPhase {
		f.lastPhase = tj.Status.Phase
		fmt.Fprintf(f.out, "%s\n", phaseLine(tj))
	}
	switch tj.Status.Phase {
	case kubetrainv1alpha1.PhaseSucceeded:
		return true, nil
	case kubetrainv1alpha1.PhaseFailed:
		return true, fmt.Errorf("%s failed: %s", jobName(tj), phaseMessage(tj))
	}
	f.redraw(tj, now)
	return false, nil
}

// redraw draws the live bar of the epoch under way, in place.
func (f *follower) redraw(tj *kubetrainv1alpha1.TrainingJob, now time.Time) {
	if !f.live || tj.Status.Phase != kubetrainv1alpha1.PhaseRunning {
		return
	}
	fmt.Fprintf(f.out, "\r\033[K%s", progressLine(tj, now))
	f.liveShown = true
}

// endLive ends the live line, so that what follows starts on a line of its own.
func (f *follower) endLive() {
	if f.liveShown {
		fmt.Fprint(f.out, "\r\033[K")
		f.liveShown = false
	}
}

// epochLine is the line of a completed epoch: a full bar and its metrics.
func epochLine(tj *kubetrainv1alpha1.TrainingJob, m kubetrainv1alpha1.EpochMetrics) string {
	return fmt.Sprintf("epoch %*d/%d %s  loss %.4f  train acc %.4f  test acc %.4f  %.0f images/s",
		digits(total(tj)), m.Epoch, total(tj), bar(1), m.Loss, m.TrainAccuracy, m.TestAccuracy, m.ImagesPerSecond)
}

// progressLine is the live line of the epoch under way: how far it probably is (from the median
// epoch's duration), the last completed epoch's loss and accuracy, and the time left for the job.
func progressLine(tj *kubetrainv1alpha1.TrainingJob, now time.Time) string {
	done := int32(0)
	if p := tj.Status.Progress; p != nil {
		done = p.Epoch
	}
	epochs := total(tj)
	line := fmt.Sprintf("epoch %*d/%d ", digits(epochs), min(done+1, epochs), epochs)
	within, eta, known := estimate(tj, now)
	if known {
		line += fmt.Sprintf("%s %3.0f%%", bar(within), 100*within)
	} else {
		line += bar(0) + "    "
	}
	if acc, ok := metric(tj.Status.Progress, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.TestAccuracy }); ok {
		loss, _ := metric(tj.Status.Progress, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.Loss })
		line += fmt.Sprintf("  loss %.4f  test acc %.4f", loss, acc)
	}
	if known {
		line += "  ETA " + shortDuration(eta)
	} else {
		line += "  ETA unknown until two epochs are done"
	}
	return line
}

// estimate says how far into the epoch under way the job probably is (0 to 0.99) and how long it
// has left in all, from the median time between consecutive epochs' reports (a median, so that a
// suspension or a restart between two epochs does not count as a slow epoch); known is false
// before two consecutive epochs were reported.
func estimate(tj *kubetrainv1alpha1.TrainingJob, now time.Time) (within float64, eta time.Duration, known bool) {
	per, ok := epochDuration(tj.Status.History)
	p := tj.Status.Progress
	if !ok || p == nil || len(tj.Status.History) == 0 {
		return 0, 0, false
	}
	last := tj.Status.History[len(tj.Status.History)-1]
	if last.Time == nil || last.Epoch != p.Epoch {
		return 0, 0, false
	}
	elapsed := now.Sub(last.Time.Time)
	// The epoch under way has taken elapsed so far; an epoch slower than the median is taken to be
	// nearly done, not past 100%.
	within = min(max(float64(elapsed)/float64(per), 0), 0.99)
	remaining := p.Epochs - p.Epoch
	if remaining <= 0 {
		return 0, 0, true
	}
	eta = time.Duration(float64(per) * (float64(remaining) - within))
	return within, eta, true
}

// epochDuration is the median time between the reports of consecutive epochs.
func epochDuration(h []kubetrainv1alpha1.EpochMetrics) (time.Duration, bool) {
	var d []time.Duration
	for i := 1; i < len(h); i++ {
		if h[i].Time != nil && h[i-1].Time != nil && h[i].Epoch == h[i-1].Epoch+1 {
			if dt := h[i].Time.Sub(h[i-1].Time.Time); dt > 0 {
				d = append(d, dt)
			}
		}
	}
	if len(d) == 0 {
		return 0, false
	}
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2], true
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2, true
}

// bar draws a fraction from 0 to 1 as a bar of barWidth characters.
func bar(frac float64) string {
	n := int(min(max(frac, 0), 1)*barWidth + 0.5)
	return "[" + strings.Repeat("█", n) + strings.Repeat("░", barWidth-n) + "]"
}

// phaseLine says what phase the job is in, and why.
func phaseLine(tj *kubetrainv1alpha1.TrainingJob) string {
	if msg := phaseMessage(tj); msg != "" {
		return fmt.Sprintf("%s: %s", orNone(string(tj.Status.Phase)), msg)
	}
	return orNone(string(tj.Status.Phase))
}

// phaseMessage is the message of the condition that explains the phase: Stalled when it is True,
// else the condition named for the phase, else Ready.
func phaseMessage(tj *kubetrainv1alpha1.TrainingJob) string {
	conds := tj.Status.Conditions
	if c := apimeta.FindStatusCondition(conds, kubetrainv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		return c.Message
	}
	for _, t := range []string{string(tj.Status.Phase), kubetrainv1alpha1.ConditionReady} {
		if c := apimeta.FindStatusCondition(conds, t); c != nil && c.Message != "" {
			return c.Message
		}
	}
	return ""
}

// total is the job's number of epochs: the trainer's report, else the spec's.
func total(tj *kubetrainv1alpha1.TrainingJob) int32 {
	if p := tj.Status.Progress; p != nil && p.Epochs > 0 {
		return p.Epochs
	}
	return tj.Spec.Hyperparameters.Epochs
}

func digits(n int32) int { return len(fmt.Sprint(n)) }

// isTerminal says whether w is a terminal, where a line can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
