package train

import (
	"encoding/gob"
	"fmt"
	"io"

	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/optim"
)

// stateVersion changes whenever State's meaning does.
const stateVersion = 1

// State is everything a resumed run needs to continue exactly where a run stopped after an epoch:
// the weights, the optimizer's moments and step, the epochs completed, the data order's random
// source and the current order of examples.
type State struct {
	Version   int
	Model     string
	Epoch     int
	BatchSize int
	Params    [][]float32
	Adam      *optim.AdamState
	RNG       []byte
	Order     []int32
}

// SaveState writes the trainer's state to w (the checkpoint seam: the caller decides where w goes).
func (t *Trainer) SaveState(w io.Writer) error {
	rng, err := t.src.MarshalBinary()
	if err != nil {
		return err
	}
	s := State{Version: stateVersion, Model: t.cfg.Model, Epoch: t.epoch, BatchSize: t.cfg.BatchSize, RNG: rng}
	for _, p := range t.model.Params() {
		s.Params = append(s.Params, p.Value)
	}
	if a, ok := t.opt.(*optim.Adam); ok {
		s.Adam = &a.State
	}
	s.Order = make([]int32, len(t.order))
	for i, v := range t.order {
		s.Order[i] = int32(v)
	}
	return gob.NewEncoder(w).Encode(&s)
}

// LoadState restores a state written by SaveState into a trainer built with the same configuration
// and dataset. A state that does not fit is an error naming what differs.
func (t *Trainer) LoadState(r io.Reader) error {
	var s State
	if err := gob.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("train: reading state: %w", err)
	}
	params := t.model.Params()
	switch {
	case s.Version != stateVersion:
		return fmt.Errorf("train: state version %d, want %d", s.Version, stateVersion)
	case s.Model != t.cfg.Model:
		return fmt.Errorf("train: state is of model %q, want %q", s.Model, t.cfg.Model)
	case len(s.Params) != len(params):
		return fmt.Errorf("train: state holds %d parameter arrays, the model %d", len(s.Params), len(params))
	case len(s.Order) != len(t.order):
		return fmt.Errorf("train: state orders %d training examples, the dataset holds %d", len(s.Order), len(t.order))
	}
	for i, p := range params {
		if len(s.Params[i]) != len(p.Value) {
			return fmt.Errorf("train: state's parameter %d holds %d floats, want %d", i, len(s.Params[i]), len(p.Value))
		}
	}
	for _, v := range s.Order {
		if v < 0 || int(v) >= len(t.order) {
			return fmt.Errorf("train: state's order names example %d of %d", v, len(t.order))
		}
	}
	if s.Epoch < 0 {
		return fmt.Errorf("train: state's epoch %d is negative", s.Epoch)
	}
	a, adam := t.opt.(*optim.Adam)
	if adam && s.Adam != nil {
		if err := checkAdamState(s.Adam, params); err != nil {
			return err
		}
	}
	src := *t.src
	if err := src.UnmarshalBinary(s.RNG); err != nil {
		return fmt.Errorf("train: state's random source: %w", err)
	}
	// Everything checked: only now does the trainer change, so a state that does not fit leaves it
	// as it was.
	*t.src = src
	for i, v := range s.Order {
		t.order[i] = int(v)
	}
	for i, p := range params {
		copy(p.Value, s.Params[i])
	}
	if adam && s.Adam != nil {
		a.State = *s.Adam
	}
	t.epoch = s.Epoch
	return nil
}

// checkAdamState says what is wrong with Adam's moments for params.
func checkAdamState(st *optim.AdamState, params []*nn.Param) error {
	if st.Step < 0 {
		return fmt.Errorf("train: state's Adam step %d is negative", st.Step)
	}
	if len(st.M) != len(params) || len(st.V) != len(params) {
		return fmt.Errorf("train: state's Adam moments hold %d and %d arrays for %d parameters", len(st.M), len(st.V), len(params))
	}
	for i, p := range params {
		if len(st.M[i]) != len(p.Value) || len(st.V[i]) != len(p.Value) {
			return fmt.Errorf("train: state's Adam moments for parameter %d hold %d and %d floats, want %d", i, len(st.M[i]), len(st.V[i]), len(p.Value))
		}
	}
	return nil
}
