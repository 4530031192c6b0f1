package plugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

func TestListTable(t *testing.T) {
	created := metav1.Time{Time: t0.Add(-10 * time.Minute)}
	running := runningJob("running", "team-a", 3)
	fresh := testutil.MakeTrainingJob("fresh", "team-b").Epochs(5).Obj()
	starting := runningJob("starting", "team-a", 0)
	done := runningJob("done", "team-a", 10)
	done.Status.Phase = kubetrainv1alpha1.PhaseSucceeded
	jobs := []kubetrainv1alpha1.TrainingJob{*running, *fresh, *starting, *done}
	for i := range jobs {
		jobs[i].CreationTimestamp = created
	}
	cases := map[string]struct {
		allNamespaces bool
		want          table
	}{
		"one namespace": {want: table{
			header: []string{"NAME", "PHASE", "EPOCH", "TEST ACCURACY", "LOSS", "WORKERS", "AGE"},
			rows: [][]string{
				{"running", "Running", "3/10", "0.8723", "0.3301", "1/1", "10m"},
				{"fresh", "-", "0/5", "-", "-", "-", "10m"},
				{"starting", "Running", "0/10", "-", "-", "1/1", "10m"},
				{"done", "Succeeded", "10/10", "0.8897", "0.2270", "1/1", "10m"},
			},
		}},
		"all namespaces": {allNamespaces: true, want: table{
			header: []string{"NAMESPACE", "NAME", "PHASE", "EPOCH", "TEST ACCURACY", "LOSS", "WORKERS", "AGE"},
			rows: [][]string{
				{"team-a", "running", "Running", "3/10", "0.8723", "0.3301", "1/1", "10m"},
				{"team-b", "fresh", "-", "0/5", "-", "-", "-", "10m"},
				{"team-a", "starting", "Running", "0/10", "-", "-", "1/1", "10m"},
				{"team-a", "done", "Succeeded", "10/10", "0.8897", "0.2270", "1/1", "10m"},
			},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := listTable(jobs, t0, tc.allNamespaces)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(table{})); diff != "" {
				t.Errorf("listTable (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestTablePrintsAligned(t *testing.T) {
	var b bytes.Buffer
	if err := (table{header: []string{"NAME", "PHASE"}, rows: [][]string{{"a-long-name", "Running"}, {"b", "Failed"}}}).print(&b); err != nil {
		t.Fatal(err)
	}
	want := "NAME          PHASE\na-long-name   Running\nb             Failed\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want,+got):\n%s", diff)
	}
}

func TestHistoryTable(t *testing.T) {
	h := goldenHistory()
	// A history that starts past epoch 1 (status keeps the last 100) and has a gap: no duration is
	// made up for an epoch whose predecessor is not in it.
	gap := []kubetrainv1alpha1.EpochMetrics{h[1], h[2], h[5]}
	header := []string{"EPOCH", "LOSS", "TRAIN ACCURACY", "TEST ACCURACY", "IMAGES/S", "DURATION"}
	cases := map[string]struct {
		h    []kubetrainv1alpha1.EpochMetrics
		want [][]string
	}{
		"first four epochs, the fourth slow": {h: h[:4], want: [][]string{
			{"1", "0.5512", "0.8021", "0.8452", "1500", "-"},
			{"2", "0.3724", "0.8667", "0.8611", "1501", "40s"},
			{"3", "0.3301", "0.8806", "0.8723", "1502", "40s"},
			{"4", "0.3032", "0.8893", "0.8768", "1503", "1m30s"},
		}},
		"a gap": {h: gap, want: [][]string{
			{"2", "0.3724", "0.8667", "0.8611", "1501", "-"},
			{"3", "0.3301", "0.8806", "0.8723", "1502", "40s"},
			{"6", "0.2687", "0.9011", "0.8843", "1505", "-"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(table{header: header, rows: tc.want}, historyTable(tc.h), cmp.AllowUnexported(table{})); diff != "" {
				t.Errorf("historyTable (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestEpochDuration(t *testing.T) {
	at := func(epoch int32, s int) kubetrainv1alpha1.EpochMetrics {
		return kubetrainv1alpha1.EpochMetrics{Epoch: epoch, Time: &metav1.Time{Time: t0.Add(time.Duration(s) * time.Second)}}
	}
	cases := map[string]struct {
		h      []kubetrainv1alpha1.EpochMetrics
		want   time.Duration
		wantOK bool
	}{
		"none":                         {h: nil},
		"one epoch":                    {h: goldenHistory()[:1]},
		"two epochs":                   {h: goldenHistory()[:2], want: 40 * time.Second, wantOK: true},
		"a restart is not the median":  {h: goldenHistory(), want: 40 * time.Second, wantOK: true},
		"even count: mean of middles":  {h: []kubetrainv1alpha1.EpochMetrics{at(1, 0), at(2, 10), at(3, 40)}, want: 20 * time.Second, wantOK: true},
		"a gap between epochs ignored": {h: []kubetrainv1alpha1.EpochMetrics{at(1, 0), at(3, 500), at(4, 530)}, want: 30 * time.Second, wantOK: true},
		"a slow epoch in the middle":   {h: []kubetrainv1alpha1.EpochMetrics{at(1, 0), at(2, 30), at(3, 120), at(4, 160)}, want: 40 * time.Second, wantOK: true},
		"no times":                     {h: []kubetrainv1alpha1.EpochMetrics{{Epoch: 1}, {Epoch: 2}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := epochDuration(tc.h)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("epochDuration = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	four := runningJob("a", "ns", 4)
	last := four.Status.History[3].Time.Time
	cases := map[string]struct {
		tj  *kubetrainv1alpha1.TrainingJob
		now time.Time
		// want is the whole line; the ETA is 40 s per epoch for what is left.
		want string
	}{
		"a quarter into epoch 5": {tj: four, now: last.Add(10 * time.Second),
			want: "epoch  5/10 [██████░░░░░░░░░░░░░░░░░░]  25%  loss 0.3032  test acc 0.8768  ETA 3m50s"},
		"an epoch slower than the median stops at 99%": {tj: four, now: last.Add(100 * time.Second),
			want: "epoch  5/10 [████████████████████████]  99%  loss 0.3032  test acc 0.8768  ETA 3m20s"},
		"one epoch: no ETA yet": {tj: runningJob("a", "ns", 1), now: last,
			want: "epoch  2/10 [░░░░░░░░░░░░░░░░░░░░░░░░]      loss 0.5512  test acc 0.8452  ETA unknown until two epochs are done"},
		"the trainer has just started": {tj: runningJob("a", "ns", 0), now: last,
			want: "epoch  1/10 [░░░░░░░░░░░░░░░░░░░░░░░░]      ETA unknown until two epochs are done"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, progressLine(tc.tj, tc.now)); diff != "" {
				t.Errorf("progressLine (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestFollowerPrintsEachEpochOnceAndEndsWithTheJob(t *testing.T) {
	cond := func(typ, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: typ, Status: metav1.ConditionTrue, Reason: "R", Message: msg}}
	}
	pending := runningJob("a", "ns", 0)
	pending.Status.Phase = kubetrainv1alpha1.PhasePending
	pending.Status.Conditions = cond(kubetrainv1alpha1.ConditionReady, "waiting for 1 worker to run")
	two := runningJob("a", "ns", 2)
	three := runningJob("a", "ns", 3)
	succeeded := runningJob("a", "ns", 10)
	succeeded.Status.Phase = kubetrainv1alpha1.PhaseSucceeded
	succeeded.Status.Conditions = cond(kubetrainv1alpha1.ConditionSucceeded, "trained 10 epochs")
	failed := runningJob("a", "ns", 3)
	failed.Status.Phase = kubetrainv1alpha1.PhaseFailed
	failed.Status.Conditions = cond(kubetrainv1alpha1.ConditionFailed, "backoff limit 3 exceeded")
	epoch := func(n int) string {
		return epochLine(succeeded, goldenHistory()[n-1]) + "\n"
	}
	header := `trainingjob "a" in namespace "ns": `
	cases := map[string]struct {
		states   []*kubetrainv1alpha1.TrainingJob
		want     string
		wantDone bool
		wantErr  string
	}{
		"from the start to success": {
			states: []*kubetrainv1alpha1.TrainingJob{pending, two, two, three, succeeded},
			want: header + "0/10 epochs\nPending: waiting for 1 worker to run\n" + epoch(1) + epoch(2) + "Running\n" + epoch(3) +
				epoch(4) + epoch(5) + epoch(6) + epoch(7) + epoch(8) + epoch(9) + epoch(10) + "Succeeded: trained 10 epochs\n",
			wantDone: true,
		},
		"joined mid-run: earlier epochs are not replayed": {
			states: []*kubetrainv1alpha1.TrainingJob{three},
			want:   header + "3/10 epochs\nRunning\n",
		},
		"a failure ends it with the reason": {
			states:   []*kubetrainv1alpha1.TrainingJob{two, failed},
			want:     header + "2/10 epochs\nRunning\n" + epoch(3) + "Failed: backoff limit 3 exceeded\n",
			wantDone: true,
			wantErr:  `trainingjob "a" in namespace "ns" failed: backoff limit 3 exceeded`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			f := &follower{out: &out}
			var done bool
			var err error
			for _, st := range tc.states {
				if done {
					t.Fatal("the follower went on after the job finished")
				}
				done, err = f.update(st, t0)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("output (-want,+got):\n%s", diff)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if done != tc.wantDone || gotErr != tc.wantErr {
				t.Errorf("done, err = %v, %q; want %v, %q", done, gotErr, tc.wantDone, tc.wantErr)
			}
		})
	}
}

func TestFollowerRedrawsTheLiveLineInPlace(t *testing.T) {
	var out bytes.Buffer
	f := &follower{out: &out, live: true}
	two := runningJob("a", "ns", 2)
	f.update(two, two.Status.History[1].Time.Add(20*time.Second))
	f.redraw(two, two.Status.History[1].Time.Add(30*time.Second))
	f.update(runningJob("a", "ns", 3), two.Status.History[1].Time.Add(40*time.Second))
	got := out.String()
	// Each redraw returns to the start of the line and clears it; a completed epoch's line
	// replaces the live line rather than following it.
	for _, want := range []string{
		"\r\033[Kepoch  3/10 [████████████░░░░░░░░░░░░]  50%",
		"\r\033[Kepoch  3/10 [██████████████████░░░░░░]  75%",
		"\r\033[K" + epochLine(two, goldenHistory()[2]) + "\n",
		"\r\033[Kepoch  4/10 [░░░░░░░░░░░░░░░░░░░░░░░░]   0%",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
}

func TestTerminalChart(t *testing.T) {
	h := goldenHistory()
	lines := strings.Split(strings.TrimSuffix(terminalChart(h, 40), "\n"), "\n")
	// Two panels of a legend, chartHeight rows and an axis, then the epochs.
	if len(lines) != 2*(chartHeight+2)+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 2*(chartHeight+2)+1, strings.Join(lines, "\n"))
	}
	acc, loss := lines[1:1+chartHeight], lines[chartHeight+3:2*chartHeight+3]
	checks := []struct {
		what, got, want string
	}{
		{"accuracy legend", lines[0], "         · train accuracy   ● test accuracy"},
		{"accuracy top label: the highest accuracy", prefix(acc[0]), " 0.9155 ┤"},
		{"accuracy bottom label: the lowest", prefix(acc[chartHeight-1]), " 0.8021 ┤"},
		{"loss legend", lines[chartHeight+2], "         ● loss"},
		{"loss top label", prefix(loss[0]), " 0.5512 ┤"},
		{"loss bottom label", prefix(loss[chartHeight-1]), " 0.2270 ┤"},
		{"epoch axis", lines[len(lines)-1], "         1" + strings.Repeat(" ", 37) + "10  epoch"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	// The loss falls: its first column is on the top row and its last on the bottom row. The
	// train accuracy rises from the bottom row to the top.
	col := func(row string, x int) rune { return []rune(row)[9+x] }
	if col(loss[0], 0) != '●' || col(loss[chartHeight-1], 39) != '●' {
		t.Errorf("the loss curve does not fall from the top left to the bottom right:\n%s", strings.Join(loss, "\n"))
	}
	if col(acc[chartHeight-1], 0) != '·' || col(acc[0], 39) != '·' {
		t.Errorf("the train accuracy does not rise from the bottom left to the top right:\n%s", strings.Join(acc, "\n"))
	}
	// Between epochs the curve is interpolated, not stepped: the falling loss leaves a mark on
	// every row it passes.
	for r, row := range loss {
		if !strings.ContainsRune(row[len(prefix(row)):], '●') {
			t.Errorf("loss row %d has no mark: the curve jumps between epochs:\n%s", r, strings.Join(loss, "\n"))
		}
	}
	// Every column of a panel holds each of its curves once.
	for x := range 40 {
		marks := map[rune]int{}
		for _, row := range loss {
			if r := []rune(row + strings.Repeat(" ", 50)); r[9+x] != ' ' {
				marks[r[9+x]]++
			}
		}
		if marks['●'] != 1 {
			t.Fatalf("loss column %d has %d marks, want 1", x, marks['●'])
		}
	}
}

func TestTerminalChartOfOneEpoch(t *testing.T) {
	got := terminalChart(goldenHistory()[:1], 40)
	if !strings.Contains(got, "┤●") || !strings.HasSuffix(got, "\n         1  epoch\n") {
		t.Errorf("a single epoch should be one point over epoch 1:\n%s", got)
	}
}

func TestHumanFormats(t *testing.T) {
	sizes := map[int64]string{0: "0B", 512: "512B", 1536: "1.5Ki", 150 * 1024: "150Ki", 3 << 20: "3.0Mi", 5 << 30: "5.0Gi"}
	for n, want := range sizes {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
	durations := map[time.Duration]string{-time.Second: "0s", 42 * time.Second: "42s", 185 * time.Second: "3m05s",
		2*time.Hour + 10*time.Minute + 20*time.Second: "2h10m"}
	for d, want := range durations {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for frac, want := range map[float64]string{0: "[" + strings.Repeat("░", 24) + "]", 0.5: "[" + strings.Repeat("█", 12) + strings.Repeat("░", 12) + "]",
		1.7: "[" + strings.Repeat("█", 24) + "]"} {
		if got := bar(frac); got != want {
			t.Errorf("bar(%v) = %q, want %q", frac, got, want)
		}
	}
}

// prefix is a chart row's label and tick: its first 9 characters.
func prefix(row string) string { return string([]rune(row)[:9]) }
