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
// backward, update. It returns the batch's mean loss and how many examples it classified correctly
// before the update. It allocates nothing.
func (t *Trainer) Step(idx []int) (loss float64, correct int) {
	t.x.SetBatch(len(idx))
	t.ds.Train.Gather(t.x.Data, t.labels, idx)
	logits := t.model.Forward(t.x)
	loss, correct = t.loss.Loss(logits, t.labels[:len(idx)])
	t.model.Backward(t.loss.Grad())
	t.opt.Step(t.model.Params())
	return loss, correct
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
	var correct int
	for lo := 0; lo < len(t.order); lo += t.cfg.BatchSize {
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		default:
		}
		idx := t.order[lo:min(lo+t.cfg.BatchSize, len(t.order))]
		l, c := t.Step(idx)
		lossSum += l * float64(len(idx))
		correct += c
		s.Images += len(idx)
	}
	t.epoch++
	s.Duration = t.now().Sub(start)
	if s.Images > 0 {
		s.Loss = lossSum / float64(s.Images)
		s.TrainAccuracy = float64(correct) / float64(s.Images)
	}
	return s, nil
}

// Evaluate returns the model's accuracy on a split.
func (t *Trainer) Evaluate(s *data.Split) float64 {
	if s.Len() == 0 {
		return 0
	}
	idx := make([]int, t.cfg.BatchSize)
	correct := 0
	for lo := 0; lo < s.Len(); lo += t.cfg.BatchSize {
		n := min(t.cfg.BatchSize, s.Len()-lo)
		for i := range n {
			idx[i] = lo + i
		}
		t.x.SetBatch(n)
		s.Gather(t.x.Data, t.labels, idx[:n])
		logits := t.model.Forward(t.x)
		_, c := t.loss.Loss(logits, t.labels[:n])
		correct += c
	}
	return float64(correct) / float64(s.Len())
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
		p := contract.Progress{
			Epoch:           t.epoch,
			Epochs:          t.cfg.Epochs,
			Loss:            s.Loss,
			TrainAccuracy:   s.TrainAccuracy,
			TestAccuracy:    t.Evaluate(t.ds.Test),
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
