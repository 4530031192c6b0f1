// Package metrics exports the TrainingJobs' state for Prometheus, on the manager's secured metrics
// endpoint (controller-runtime's registry): jobs by phase, and each job's training progress,
// checkpoint age and restarts, read from the manager's cache at every scrape, so that a deleted
// job's series go with it and nothing is kept twice. Names follow Prometheus' conventions: the
// kubetrain_ prefix, base units in the name, _total for counters.
package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// ReconcileErrors counts the reconcile passes that ended in an error (and so are retried with
// backoff), by job namespace.
var ReconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kubetrain_reconcile_errors_total",
	Help: "Reconcile passes of TrainingJobs that ended in an error.",
}, []string{"namespace"})

var jobLabels = []string{"namespace", "trainingjob"}

var (
	jobsDesc = prometheus.NewDesc("kubetrain_trainingjobs",
		"TrainingJobs by namespace and phase.", []string{"namespace", "phase"}, nil)
	epochDesc = prometheus.NewDesc("kubetrain_trainingjob_epoch",
		"The last epoch the trainer reported as completed.", jobLabels, nil)
	epochsDesc = prometheus.NewDesc("kubetrain_trainingjob_epochs",
		"The epochs the job trains for.", jobLabels, nil)
	accuracyDesc = prometheus.NewDesc("kubetrain_trainingjob_test_accuracy_ratio",
		"Test accuracy after the last reported epoch, from 0 to 1.", jobLabels, nil)
	lossDesc = prometheus.NewDesc("kubetrain_trainingjob_loss",
		"Training loss of the last reported epoch.", jobLabels, nil)
	speedDesc = prometheus.NewDesc("kubetrain_trainingjob_images_per_second",
		"Training speed of the last reported epoch, over all workers.", jobLabels, nil)
	checkpointAgeDesc = prometheus.NewDesc("kubetrain_trainingjob_checkpoint_age_seconds",
		"Time since the job's latest committed checkpoint.", jobLabels, nil)
	checkpointSizeDesc = prometheus.NewDesc("kubetrain_trainingjob_checkpoint_size_bytes",
		"Size of the job's latest committed checkpoint.", jobLabels, nil)
	restartsDesc = prometheus.NewDesc("kubetrain_trainingjob_restarts_total",
		"Attempts the job restarted after, by reason: failure (counted against the backoff limit) or disruption.",
		append(jobLabels, "reason"), nil)
)

// source is where the collector reads the jobs: the cache of the manager last set up in this
// process (tests run several, one after another).
type source struct {
	reader client.Reader
	clock  clock.PassiveClock
}

var (
	current  atomic.Pointer[source]
	register sync.Once
)

// Serve makes the metrics registry report the jobs reader holds. It registers the metrics once
// per process; a later call only changes where they are read.
func Serve(reader client.Reader, clk clock.PassiveClock) {
	current.Store(&source{reader, clk})
	register.Do(func() {
		ctrlmetrics.Registry.MustRegister(ReconcileErrors, collector{})
	})
}

// collector reads the jobs at every scrape.
type collector struct{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobsDesc, epochDesc, epochsDesc, accuracyDesc, lossDesc, speedDesc,
		checkpointAgeDesc, checkpointSizeDesc, restartsDesc} {
		ch <- d
	}
}

// listTimeout bounds the read of the jobs: from the cache, it is immediate once the cache is synced.
const listTimeout = 5 * time.Second

func (collector) Collect(ch chan<- prometheus.Metric) {
	src := current.Load()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	var jobs kubetrainv1alpha1.TrainingJobList
	if err := src.reader.List(ctx, &jobs); err != nil {
		// A cache that is not (or no longer) running: the jobs' series are left out, and the rest
		// of the scrape (controller-runtime's own metrics) still answers.
		log.Log.WithName("metrics").Error(err, "reading TrainingJobs for their metrics")
		return
	}
	type nsPhase struct{ namespace, phase string }
	byPhase := map[nsPhase]int{}
	now := src.clock.Now()
	for i := range jobs.Items {
		tj := &jobs.Items[i]
		st := &tj.Status
		phase := string(st.Phase)
		if phase == "" {
			phase = "New"
		}
		byPhase[nsPhase{tj.Namespace, phase}]++
		labels := []string{tj.Namespace, tj.Name}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		gauge(epochsDesc, float64(tj.Spec.Hyperparameters.Epochs))
		if p := st.Progress; p != nil {
			gauge(epochDesc, float64(p.Epoch))
			if p.Epoch > 0 {
				gauge(accuracyDesc, p.TestAccuracy)
				gauge(lossDesc, p.Loss)
				gauge(speedDesc, p.ImagesPerSecond)
			}
		}
		if c := st.LatestCheckpoint; c != nil {
			if c.Time != nil {
				gauge(checkpointAgeDesc, now.Sub(c.Time.Time).Seconds())
			}
			if c.Bytes > 0 {
				gauge(checkpointSizeDesc, float64(c.Bytes))
			}
		}
		// Every disruption restarts the job; the other restarts followed failures.
		for reason, n := range map[string]int32{"failure": st.Restarts - st.Disruptions, "disruption": st.Disruptions} {
			ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(n), append(labels, reason)...)
		}
	}
	for k, n := range byPhase {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), k.namespace, k.phase)
	}
}
