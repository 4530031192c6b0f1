package nn

import (
	"fmt"
	"math"

	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// SoftmaxCrossEntropy is the mean cross-entropy of softmax(logits) against integer labels, computed
// in float64 with the maximum subtracted, so large logits cannot overflow.
type SoftmaxCrossEntropy struct {
	grad *tensor.Tensor
}

// NewSoftmaxCrossEntropy returns a loss for batches of up to maxBatch examples of classes logits.
func NewSoftmaxCrossEntropy(maxBatch, classes int) *SoftmaxCrossEntropy {
	return &SoftmaxCrossEntropy{grad: tensor.New(maxBatch, classes)}
}

// Loss returns the batch's mean loss and how many examples the logits classify correctly (the
// first maximum wins ties), and writes the gradient of the mean loss with respect to the logits,
// which Grad returns. Labels outside [0, classes) panic: the data readers reject them.
func (l *SoftmaxCrossEntropy) Loss(logits *tensor.Tensor, labels []uint8) (loss float64, correct int) {
	return l.LossShare(logits, labels, logits.Batch())
}

// LossShare is Loss for a worker's share of a batch of total examples spread over several
// workers: the gradient is that of the batch's mean loss, the sum over this share divided by total,
// so that the workers' gradients add up to the whole batch's. The loss returned is this share's mean.
func (l *SoftmaxCrossEntropy) LossShare(logits *tensor.Tensor, labels []uint8, total int) (loss float64, correct int) {
	tensor.CheckShape("nn", logits, l.grad.Shape[1:])
	n, classes := logits.Batch(), logits.Example()
	if len(labels) != n || total < n {
		panic(fmt.Sprintf("nn: %d labels for a batch of %d, a share of %d", len(labels), n, total))
	}
	l.grad.SetBatch(n)
	inv := 1 / float64(total)
	for i := 0; i < n; i++ {
		z := logits.Data[i*classes : (i+1)*classes]
		g := l.grad.Data[i*classes : (i+1)*classes]
		label := int(labels[i])
		if label >= classes {
			panic(fmt.Sprintf("nn: label %d of example %d is not below %d classes", label, i, classes))
		}
		best := 0
		for j, v := range z {
			if v > z[best] {
				best = j
			}
		}
		if best == label {
			correct++
		}
		zmax := float64(z[best])
		var sum float64
		for _, v := range z {
			sum += math.Exp(float64(v) - zmax)
		}
		logSum := math.Log(sum)
		loss += logSum - (float64(z[label]) - zmax)
		for j, v := range z {
			p := math.Exp(float64(v)-zmax-logSum) * inv
			if j == label {
				p -= inv
			}
			g[j] = float32(p)
		}
	}
	return loss * (1 / float64(n)), correct
}

// Grad is the gradient written by the last Loss.
func (l *SoftmaxCrossEntropy) Grad() *tensor.Tensor { return l.grad }
