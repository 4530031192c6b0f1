package train

import (
	"bytes"
	"encoding/gob"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/data"
	"github.com/kubetrain/kubetrain/trainer/optim"
)

// FuzzLoadState feeds arbitrary bytes to LoadState: a state that does not fit is an error that
// leaves the trainer as it was, one that fits can be trained on, and nothing panics.
func FuzzLoadState(f *testing.F) {
	// Small 8x8 images keep the model small (about 20,000 parameters), so each input is quick.
	split := func(n int) *data.Split {
		s := &data.Split{Images: make([]uint8, n*8*8), Labels: make([]uint8, n), Height: 8, Width: 8, Channels: 1}
		for i := range s.Images {
			s.Images[i] = uint8(i * 7)
		}
		for i := range s.Labels {
			s.Labels[i] = uint8(i % data.Classes)
		}
		return s
	}
	ds := &data.Dataset{Name: "fuzz", Train: split(40), Test: split(8)}
	tr, err := New(smallConfig(1), ds)
	if err != nil {
		f.Fatal(err)
	}
	defer tr.Close()
	tr.Step([]int{0, 1, 2, 3}) // Adam has moments
	var valid bytes.Buffer
	if err := tr.SaveState(&valid); err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Bytes())
	f.Add(valid.Bytes()[:valid.Len()/2])
	encode := func(s State) []byte {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(&s); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	var s State
	if err := gob.NewDecoder(bytes.NewReader(valid.Bytes())).Decode(&s); err != nil {
		f.Fatal(err)
	}
	short := s
	short.Adam = &optim.AdamState{Step: 1, M: s.Adam.M, V: s.Adam.V[:1]}
	f.Add(encode(short))
	outOfRange := s
	outOfRange.Order = append([]int32{-1}, s.Order[1:]...)
	f.Add(encode(outOfRange))
	f.Add([]byte{})

	// One trainer for every input (building one per input made the fuzzer 30 times slower), put
	// back into the valid state before each.
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := tr.LoadState(bytes.NewReader(valid.Bytes())); err != nil {
			t.Fatal(err)
		}
		before := tr.WeightsHash()
		if err := tr.LoadState(bytes.NewReader(b)); err != nil {
			if tr.WeightsHash() != before {
				t.Fatalf("a state refused with %v changed the weights", err)
			}
			return
		}
		tr.Step([]int{0, 1, 2, 3})
	})
}
