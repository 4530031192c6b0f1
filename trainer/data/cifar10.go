package data

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// The CIFAR-10 binary format: each file holds records of one label byte followed by the red, green
// and blue planes of a 32x32 image, row-major.
const (
	cifarSide          = 32
	cifarPixels        = cifarSide * cifarSide
	CIFARRecordSize    = 1 + 3*cifarPixels
	CIFARRecordsInFile = 10000
)

// CIFARTrainFiles and CIFARTestFile are the files of a CIFAR-10 directory.
var (
	CIFARTrainFiles = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	CIFARTestFile   = "test_batch.bin"
)

// LoadCIFAR10 reads the six CIFAR-10 binary files of dir. A file may hold fewer than 10,000
// records (the synthetic set's do) but not more, and only whole records.
func LoadCIFAR10(dir string) (*Dataset, error) {
	train := &Split{Height: cifarSide, Width: cifarSide, Channels: 3}
	for _, name := range CIFARTrainFiles {
		if err := readCIFARFile(filepath.Join(dir, name), train); err != nil {
			return nil, err
		}
	}
	test := &Split{Height: cifarSide, Width: cifarSide, Channels: 3}
	if err := readCIFARFile(filepath.Join(dir, CIFARTestFile), test); err != nil {
		return nil, err
	}
	return &Dataset{Name: "cifar10 " + dir, Train: train, Test: test}, nil
}

func readCIFARFile(path string, s *Split) error {
	b, err := readFileAtMost(path, CIFARRecordsInFile*CIFARRecordSize, func(size int64) error {
		return errorf(path, CIFARRecordsInFile, "oversized: %d records, want at most %d", size/CIFARRecordSize, CIFARRecordsInFile)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(path, -1, "missing: a cifar10 dataset directory holds %v and %s", CIFARTrainFiles, CIFARTestFile)
	}
	if err != nil {
		return err
	}
	n := len(b) / CIFARRecordSize
	switch {
	case len(b) == 0:
		return errorf(path, -1, "empty, want records of %d bytes", CIFARRecordSize)
	case len(b)%CIFARRecordSize != 0:
		return errorf(path, n, "truncated: %d bytes of a %d-byte record (file is %d bytes, not a multiple of %d)", len(b)%CIFARRecordSize, CIFARRecordSize, len(b), CIFARRecordSize)
	}
	base := len(s.Labels)
	s.Labels = append(s.Labels, make([]uint8, n)...)
	s.Images = append(s.Images, make([]uint8, n*3*cifarPixels)...)
	for r := 0; r < n; r++ {
		rec := b[r*CIFARRecordSize : (r+1)*CIFARRecordSize]
		if rec[0] >= Classes {
			return errorf(path, r, "label %d, want 0..%d", rec[0], Classes-1)
		}
		s.Labels[base+r] = rec[0]
		img := s.Images[(base+r)*3*cifarPixels : (base+r+1)*3*cifarPixels]
		for c := 0; c < 3; c++ {
			plane := rec[1+c*cifarPixels : 1+(c+1)*cifarPixels]
			for p, v := range plane {
				img[p*3+c] = v
			}
		}
	}
	return nil
}

// WriteCIFAR10 writes ds in the CIFAR-10 binary format into dir: its training split spread over
// the five data_batch files, its test split in test_batch.bin. Images must be 32x32x3.
func WriteCIFAR10(dir string, ds *Dataset) error {
	for _, s := range []*Split{ds.Train, ds.Test} {
		if s.Height != cifarSide || s.Width != cifarSide || s.Channels != 3 {
			return errorf(dir, -1, "cannot write %dx%dx%d images as CIFAR-10 (32x32x3)", s.Height, s.Width, s.Channels)
		}
	}
	per := (ds.Train.Len() + len(CIFARTrainFiles) - 1) / len(CIFARTrainFiles)
	for i, name := range CIFARTrainFiles {
		lo, hi := min(i*per, ds.Train.Len()), min((i+1)*per, ds.Train.Len())
		if err := os.WriteFile(filepath.Join(dir, name), encodeCIFAR(ds.Train, lo, hi), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, CIFARTestFile), encodeCIFAR(ds.Test, 0, ds.Test.Len()), 0o644)
}

func encodeCIFAR(s *Split, lo, hi int) []byte {
	b := make([]byte, 0, (hi-lo)*CIFARRecordSize)
	for r := lo; r < hi; r++ {
		b = append(b, s.Labels[r])
		img := s.Images[r*3*cifarPixels : (r+1)*3*cifarPixels]
		for c := 0; c < 3; c++ {
			for p := 0; p < cifarPixels; p++ {
				b = append(b, img[p*3+c])
			}
		}
	}
	return b
}
