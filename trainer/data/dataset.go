package data

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/kubetrain/kubetrain/internal/contract"
)

// Classes is the number of classes of every supported format.
const Classes = 10

// Split is one part of a dataset: n images of Height x Width x Channels bytes and their labels.
type Split struct {
	Images                  []uint8
	Labels                  []uint8
	Height, Width, Channels int
}

// Len is the number of examples.
func (s *Split) Len() int { return len(s.Labels) }

// Shape is one image's shape, [height, width, channels].
func (s *Split) Shape() []int { return []int{s.Height, s.Width, s.Channels} }

// Gather writes the images at indices idx into dst as floats in [0, 1] and their labels into labels.
func (s *Split) Gather(dst []float32, labels []uint8, idx []int) {
	per := s.Height * s.Width * s.Channels
	for b, i := range idx {
		d := dst[b*per : (b+1)*per]
		for j, v := range s.Images[i*per : (i+1)*per] {
			d[j] = float32(v) / 255
		}
		labels[b] = s.Labels[i]
	}
}

// Dataset is a training and a test split of the same shape.
type Dataset struct {
	// Name says where the data came from, for logs.
	Name        string
	Train, Test *Split
}

// Error is bad data: which file, which record (-1 when the whole file is at fault) and what was
// expected.
type Error struct {
	File   string
	Record int
	Msg    string
}

func (e *Error) Error() string {
	if e.Record >= 0 {
		return fmt.Sprintf("%s: record %d: %s", e.File, e.Record, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func errorf(file string, record int, format string, args ...any) *Error {
	return &Error{File: file, Record: record, Msg: fmt.Sprintf(format, args...)}
}

// ConfigError is a dataset URI or format the trainer cannot use (as opposed to bad data).
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// Load opens the dataset a URI names: file:///dir holding the files of format, or the built-in
// synthetic set (contract.SyntheticDatasetURI), generated from seed.
func Load(uri, format string, seed uint64) (*Dataset, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("dataset URI %q: %v", uri, err)}
	}
	switch u.Scheme {
	case contract.SchemeSynthetic:
		if uri != contract.SyntheticDatasetURI {
			return nil, &ConfigError{Msg: fmt.Sprintf("dataset URI %q: the only synthetic dataset is %s", uri, contract.SyntheticDatasetURI)}
		}
		return Synthetic(seed, SyntheticTrain, SyntheticTest), nil
	case contract.SchemeFile:
		if u.Host != "" && u.Host != "localhost" {
			return nil, &ConfigError{Msg: fmt.Sprintf("dataset URI %q: a file URI names a local directory, file:///path (three slashes)", uri)}
		}
		dir := filepath.Clean(u.Path)
		switch format {
		case contract.FormatCIFAR10:
			return LoadCIFAR10(dir)
		case contract.FormatIDX:
			return LoadIDX(dir)
		}
		return nil, &ConfigError{Msg: fmt.Sprintf("dataset format %q is not one of %v", format, contract.Formats)}
	case contract.SchemeS3:
		return nil, &ConfigError{Msg: fmt.Sprintf("dataset URI %q: s3:// datasets are not supported yet; copy the files into the image or a volume and use file:///dir", uri)}
	}
	return nil, &ConfigError{Msg: fmt.Sprintf("dataset URI %q: scheme %q is not file or synthetic", uri, u.Scheme)}
}

// readFileAtMost reads a whole file of at most limit bytes. A larger one is refused from its size
// before any of it is read, so a huge or sparse file costs no memory: with the error oversized
// returns for that size, or a generic one when oversized is nil. A missing file is
// fs.ErrNotExist, anything else an *Error naming the file.
func readFileAtMost(path string, limit int64, oversized func(size int64) error) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, errorf(path, -1, "%v", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, errorf(path, -1, "%v", err)
	}
	if info.Size() > limit {
		if oversized != nil {
			return nil, oversized(info.Size())
		}
		return nil, errorf(path, -1, "oversized: %d bytes, want at most %d", info.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, errorf(path, -1, "%v", err)
	case int64(len(b)) > limit:
		return nil, errorf(path, -1, "oversized: grew past %d bytes while read", limit)
	}
	return b, nil
}
