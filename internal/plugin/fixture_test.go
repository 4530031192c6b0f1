package plugin

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// t0 is when the fixed history's first epoch ended.
var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// goldenHistory is a fixed run of ten epochs, shaped like the reference CNN on Fashion-MNIST: the
// golden picture and the README's are drawn from it. Epochs take 40 s, but the fourth took 90 s
// (a restart), which the median must ignore.
func goldenHistory() []kubetrainv1alpha1.EpochMetrics {
	loss := []float64{0.5512, 0.3724, 0.3301, 0.3032, 0.2841, 0.2687, 0.2553, 0.2449, 0.2351, 0.2270}
	train := []float64{0.8021, 0.8667, 0.8806, 0.8893, 0.8962, 0.9011, 0.9058, 0.9094, 0.9127, 0.9155}
	test := []float64{0.8452, 0.8611, 0.8723, 0.8768, 0.8801, 0.8843, 0.8859, 0.8871, 0.8902, 0.8897}
	h := make([]kubetrainv1alpha1.EpochMetrics, len(loss))
	at := t0
	for i := range h {
		if i == 3 {
			at = at.Add(50 * time.Second)
		}
		if i > 0 {
			at = at.Add(40 * time.Second)
		}
		h[i] = kubetrainv1alpha1.EpochMetrics{Epoch: int32(i + 1), Loss: loss[i], TrainAccuracy: train[i],
			TestAccuracy: test[i], ImagesPerSecond: 1500 + float64(i), Time: &metav1.Time{Time: at}}
	}
	return h
}

// runningJob is a job of ten epochs whose first done epochs are reported, Running.
func runningJob(name, ns string, done int) *kubetrainv1alpha1.TrainingJob {
	h := goldenHistory()[:done]
	tj := testutil.MakeTrainingJob(name, ns).Epochs(10).Obj()
	tj.Status.Phase = kubetrainv1alpha1.PhaseRunning
	tj.Status.Workers.Ready = "1/1"
	tj.Status.History = h
	tj.Status.Progress = &kubetrainv1alpha1.Progress{Epochs: 10, EpochText: fmt.Sprintf("%d/10", done)}
	if done > 0 {
		tj.Status.Progress.EpochMetrics = h[done-1]
	}
	return tj
}
