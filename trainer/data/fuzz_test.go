package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCIFAR10File feeds arbitrary bytes to the CIFAR-10 reader: it returns a dataset of whole,
// valid records or an error naming the file, and never panics.
func FuzzCIFAR10File(f *testing.F) {
	rec := make([]byte, CIFARRecordSize)
	rec[0] = 9
	f.Add(rec)
	f.Add(append(rec, rec...))
	f.Add(rec[:CIFARRecordSize-1])
	f.Add([]byte{10})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), CIFARTestFile)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Split{Height: cifarSide, Width: cifarSide, Channels: 3}
		err := readCIFARFile(path, s)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.File != path {
				t.Fatalf("error %v does not name the file %s", err, path)
			}
			return
		}
		if len(b)%CIFARRecordSize != 0 || len(s.Labels) != len(b)/CIFARRecordSize || len(s.Images) != len(s.Labels)*3*cifarPixels {
			t.Fatalf("%d bytes read as %d labels and %d image bytes", len(b), len(s.Labels), len(s.Images))
		}
		for _, l := range s.Labels {
			if l >= Classes {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}

// FuzzIDX feeds arbitrary image and label files to the IDX reader, gzipped or not: it returns a
// split whose images and labels agree or an error, and never panics.
func FuzzIDX(f *testing.F) {
	header := func(magic uint32, dims ...uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, magic)
		for _, d := range dims {
			b = binary.BigEndian.AppendUint32(b, d)
		}
		return b
	}
	f.Add(append(header(idxMagicImages, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8), append(header(idxMagicLabels, 2), 3, 9), false)
	f.Add(header(idxMagicImages, idxMaxItems, 4096, 4096), header(idxMagicLabels, idxMaxItems), false)
	f.Add(header(idxMagicImages, 1, 1, 1), header(idxMagicLabels, 1), true)
	f.Add([]byte{0, 0, 8}, []byte{}, false)
	f.Fuzz(func(t *testing.T, images, labels []byte, gzip bool) {
		dir := t.TempDir()
		write := func(name string, b []byte) {
			if gzip {
				name += ".gz"
				b = gz(b)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write(IDXTrainImages, images)
		write(IDXTrainLabels, labels)
		s, err := readIDXPair(dir, IDXTrainImages, IDXTrainLabels)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v (%T) is not a data.Error naming the file", err, err)
			}
			return
		}
		if len(s.Images) != len(s.Labels)*s.Height*s.Width || s.Height == 0 || s.Width == 0 {
			t.Fatalf("%d labels of %dx%d images in %d bytes", len(s.Labels), s.Height, s.Width, len(s.Images))
		}
		for _, l := range s.Labels {
			if l >= Classes {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}
