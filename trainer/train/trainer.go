package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/data"
	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/optim"
	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// Config is what a training run needs besides its data.
type Config struct {
	Model        string
	Epochs       int
	BatchSize    int
	LearningRate float64
	Optimizer    string
	Seed         uint64
	Threads      int
	// Comm joins this trainer to the other workers of a data-parallel run; nil trains alone. Every
	// worker reads the same shuffled order and computes the gradient of its own slice of each
	// batch; the gradients are summed in one collective, so that each step is the one a single
	// worker would take on the whole batch: BatchSize is the global batch, and the learning rate
	// means what it means for one worker.
	Comm Collective
}

// Collective sums buffers across the workers of a run (trainer/collective's Comm).
type Collective interface {
	Rank() int
	Size() int
	AllReduce(buf []float32) error
}

// Reporter receives each epoch's progress; the CLI prints it, a later version also sends it to the
// TrainingJob's status.
type Reporter interface {
	Report(p contract.Progress)
}

// ReporterFunc adapts a function to a Reporter.
type ReporterFunc func(p contract.Progress)

func (f ReporterFunc) Report(p contract.Progress) { f(p) }

// Trainer trains one model on one dataset.
type Trainer struct {
	cfg    Config
	ds     *data.Dataset
	eng    *nn.Engine
	model  *nn.Model
	loss   *nn.SoftmaxCrossEntropy
	opt    optim.Optimizer
	src    *rand.PCG // the data order's randomness
	rng    *rand.Rand
	order  []int // the current epoch's order of training examples
	x      *tensor.Tensor
	labels []uint8
	epoch  int // epochs completed
	now    func() time.Time
}

// New builds a trainer: the model's input shape comes from the dataset. Close it when done.
func New(cfg Config, ds *data.Dataset) (*Trainer, error) {
	if cfg.BatchSize < 1 || cfg.Epochs < 0 || cfg.Threads < 1 {
		return nil, fmt.Errorf("train: batch size %d, epochs %d, threads %d: want batch size and threads >= 1", cfg.BatchSize, cfg.Epochs, cfg.Threads)
	}
	layers, err := nn.Preset(cfg.Model, data.Classes)
	if err != nil {
		return nil, err
	}
	t := &Trainer{cfg: cfg, ds: ds, eng: nn.NewEngine(cfg.Threads), now: time.Now}
	switch cfg.Optimizer {
	case contract.OptimizerAdam, "":
		t.opt = optim.NewAdam(cfg.LearningRate, t.eng.Pool)
	case contract.OptimizerSGD:
		t.opt = optim.NewSGD(cfg.LearningRate, t.eng.Pool)
	default:
		t.eng.Close()
		return nil, fmt.Errorf("unknown optimizer %q", cfg.Optimizer)
	}
	shape := ds.Train.Shape()
	// Two streams from the seed: one initialises the weights, the other orders the data.
	t.model = nn.NewModel(layers, shape, cfg.BatchSize, rand.New(rand.NewPCG(cfg.Seed, 0)), t.eng)
	t.src = rand.NewPCG(cfg.Seed, 1)
	t.rng = rand.New(t.src)
	t.loss = nn.NewSoftmaxCrossEntropy(cfg.BatchSize, data.Classes)
	t.x = tensor.New(append([]int{cfg.BatchSize}, shape...)...)
	t.labels = make([]uint8, cfg.BatchSize)
	t.order = make([]int, ds.Train.Len())
	for i := range t.order {
		t.order[i] = i
	}
	return t, nil
}

// Close stops the trainer's threads.
func (t *Trainer) Close() { t.eng.Close() }

// Model is the model being trained.
func (t *Trainer) Model() *nn.Model { return t.model }

// Optimizer is the optimizer in use.
func (t *Trainer) Optimizer() optim.Optimizer { return t.opt }

// Epoch is the number of epochs completed.
func (t *Trainer) Epoch() int { return t.epoch }

// Step trains on the training examples at indices idx (at most the batch size): forward, loss,
// backward, update. In a data-parallel run idx is the whole batch, the same on every worker, and
// this worker computes its slice's part of the gradient; the parts are summed before the update.
// It returns this worker's slice's mean loss, how many of its examples it classified correctly
// before the update, and how many examples the slice held. Alone, it allocates nothing.
func (t *Trainer) Step(idx []int) (loss float64, correct, n int, err error) {
	share := t.share(idx)
	if len(share) == 0 {
		clear(t.model.Grads()) // a batch smaller than the world: nothing of it here
	} else {
		t.x.SetBatch(len(share))
		t.ds.Train.Gather(t.x.Data, t.labels, share)
		logits := t.model.Forward(t.x)
		loss, correct = t.loss.LossShare(logits, t.labels[:len(share)], len(idx))
		t.model.Backward(t.loss.Grad())
	}
	if t.parallel() {
		if err := t.cfg.Comm.AllReduce(t.model.Grads()); err != nil {
			return 0, 0, 0, err
		}
	}
	t.opt.Step(t.model.Params())
	return loss, correct, len(share), nil
}

// share is this worker's part of a batch, or of any list every worker holds the same: the rank-th
// of Size() nearly equal slices.
func (t *Trainer) share(idx []int) []int {
	if t.cfg.Comm == nil {
		return idx
	}
	r, n := t.cfg.Comm.Rank(), t.cfg.Comm.Size()
	return idx[len(idx)*r/n : len(idx)*(r+1)/n]
}

// parallel says whether this trainer is one of several workers.
func (t *Trainer) parallel() bool { return t.cfg.Comm != nil && t.cfg.Comm.Size() > 1 }

// sum adds up values across the workers (exactly, for counts below 2^24).
func (t *Trainer) sum(values ...float32) ([]float32, error) {
	if t.parallel() {
		if err := t.cfg.Comm.AllReduce(values); err != nil {
			return nil, err
		}
	}
	return values, nil
}

// EpochStats sums up one pass over the training split.
type EpochStats struct {
	Loss          float64
	TrainAccuracy float64
	Images        int
	Duration      time.Duration
}

// TrainEpoch shuffles the training split and trains on it batch by batch. When ctx is cancelled it
// stops before the next step and returns ctx's error; the epoch then does not count as completed.
func (t *Trainer) TrainEpoch(ctx context.Context) (EpochStats, error) {
	start := t.now()
	t.rng.Shuffle(len(t.order), func(i, j int) { t.order[i], t.order[j] = t.order[j], t.order[i] })
	var s EpochStats
	var lossSum float64
	var correct, images int
	for lo := 0; lo < len(t.order); lo += t.cfg.BatchSize {
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		default:
		}
		idx := t.order[lo:min(lo+t.cfg.BatchSize, len(t.order))]
		l, c, n, err := t.Step(idx)
		if err != nil {
			return s, err
		}
		lossSum += l * float64(n)
		correct += c
		images += n
	}
	if t.parallel() {
		totals, err := t.sum(float32(lossSum), float32(correct), float32(images))
		if err != nil {
			return s, err
		}
		lossSum, correct, images = float64(totals[0]), int(totals[1]), int(totals[2])
	}
	t.epoch++
	s.Images = images
	s.Duration = t.now().Sub(start)
	if s.Images > 0 {
		s.Loss = lossSum / float64(s.Images)
		s.TrainAccuracy = float64(correct) / float64(s.Images)
	}
	return s, nil
}

// Evaluate returns the model's accuracy on a split. In a data-parallel run each worker evaluates
// its slice of the split and the counts are summed.
func (t *Trainer) Evaluate(s *data.Split) (float64, error) {
	if s.Len() == 0 {
		return 0, nil
	}
	all := make([]int, s.Len())
	for i := range all {
		all[i] = i
	}
	mine := t.share(all)
	correct := 0
	for lo := 0; lo < len(mine); lo += t.cfg.BatchSize {
		idx := mine[lo:min(lo+t.cfg.BatchSize, len(mine))]
		t.x.SetBatch(len(idx))
		s.Gather(t.x.Data, t.labels, idx)
		logits := t.model.Forward(t.x)
		_, c := t.loss.Loss(logits, t.labels[:len(idx)])
		correct += c
	}
	totals, err := t.sum(float32(correct))
	if err != nil {
		return 0, err
	}
	return float64(totals[0]) / float64(s.Len()), nil
}

// Run trains for the configured number of epochs (after those already completed, when resumed),
// evaluates on the test split after each, and reports each epoch's progress. It returns the last
// epoch's progress and ctx's error if cancelled.
func (t *Trainer) Run(ctx context.Context, r Reporter) (*contract.Progress, error) {
	start := t.now()
	var last *contract.Progress
	for t.epoch < t.cfg.Epochs {
		s, err := t.TrainEpoch(ctx)
		if err != nil {
			return last, err
		}
		acc, err := t.Evaluate(t.ds.Test)
		if err != nil {
			return last, err
		}
		p := contract.Progress{
			Epoch:           t.epoch,
			Epochs:          t.cfg.Epochs,
			Loss:            s.Loss,
			TrainAccuracy:   s.TrainAccuracy,
			TestAccuracy:    acc,
			ImagesPerSecond: float64(s.Images) / s.Duration.Seconds(),
			ElapsedSeconds:  t.now().Sub(start).Seconds(),
			Time:            t.now().UTC(),
		}
		last = &p
		if r != nil {
			r.Report(p)
		}
	}
	return last, nil
}

// WeightsHash is a SHA-256 of every parameter's bits, in order: equal hashes mean bit-identical
// weights. The determinism tests and the CLI's final summary use it.
func (t *Trainer) WeightsHash() string {
	h := sha256.New()
	var buf [4]byte
	for _, p := range t.model.Params() {
		for _, v := range p.Value {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
