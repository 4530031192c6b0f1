package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The IDX files of an MNIST-style directory, each optionally gzipped (name + ".gz").
const (
	IDXTrainImages = "train-images-idx3-ubyte"
	IDXTrainLabels = "train-labels-idx1-ubyte"
	IDXTestImages  = "t10k-images-idx3-ubyte"
	IDXTestLabels  = "t10k-labels-idx1-ubyte"
)

// IDX magic numbers: two zero bytes, the element type (0x08, unsigned byte) and the dimension count.
const (
	idxMagicImages = 0x00000803
	idxMagicLabels = 0x00000801
	// idxMaxItems bounds a header's count, so that a corrupt header cannot ask for terabytes.
	idxMaxItems = 10_000_000
)

// LoadIDX reads the four IDX files (gzipped or not) of an MNIST or Fashion-MNIST directory.
func LoadIDX(dir string) (*Dataset, error) {
	train, err := readIDXPair(dir, IDXTrainImages, IDXTrainLabels)
	if err != nil {
		return nil, err
	}
	test, err := readIDXPair(dir, IDXTestImages, IDXTestLabels)
	if err != nil {
		return nil, err
	}
	if test.Height != train.Height || test.Width != train.Width {
		return nil, errorf(filepath.Join(dir, IDXTestImages), -1, "images are %dx%d, the training images %dx%d", test.Height, test.Width, train.Height, train.Width)
	}
	return &Dataset{Name: "idx " + dir, Train: train, Test: test}, nil
}

func readIDXPair(dir, images, labels string) (*Split, error) {
	imgPath, img, err := readMaybeGzip(dir, images)
	if err != nil {
		return nil, err
	}
	lblPath, lbl, err := readMaybeGzip(dir, labels)
	if err != nil {
		return nil, err
	}
	dims, body, err := idxHeader(imgPath, img, idxMagicImages, 3)
	if err != nil {
		return nil, err
	}
	n, h, w := dims[0], dims[1], dims[2]
	if h == 0 || w == 0 || h*w > 4096*4096 {
		return nil, errorf(imgPath, -1, "images are %dx%d, want a positive size", h, w)
	}
	if err := checkBody(imgPath, body, n, h*w); err != nil {
		return nil, err
	}
	ldims, lbody, err := idxHeader(lblPath, lbl, idxMagicLabels, 1)
	if err != nil {
		return nil, err
	}
	if ldims[0] != n {
		return nil, errorf(lblPath, -1, "%d labels for the %d images of %s", ldims[0], n, filepath.Base(imgPath))
	}
	if err := checkBody(lblPath, lbody, n, 1); err != nil {
		return nil, err
	}
	for r, l := range lbody {
		if l >= Classes {
			return nil, errorf(lblPath, r, "label %d, want 0..%d", l, Classes-1)
		}
	}
	return &Split{Images: body, Labels: lbody, Height: h, Width: w, Channels: 1}, nil
}

// idxMaxBytes bounds an idx file, decompressed: no reader holds more of one in memory.
const idxMaxBytes = 1 << 31

// readMaybeGzip reads dir/name, or dir/name.gz decompressed, each of at most idxMaxBytes.
func readMaybeGzip(dir, name string) (string, []byte, error) {
	path := filepath.Join(dir, name)
	b, err := readFileAtMost(path, idxMaxBytes, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		return path, b, err
	}
	gz := path + ".gz"
	f, err := os.Open(gz)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, errorf(path, -1, "missing (nor %s.gz): an idx dataset directory holds %s, %s, %s and %s, gzipped or not",
			name, IDXTrainImages, IDXTrainLabels, IDXTestImages, IDXTestLabels)
	}
	if err != nil {
		return gz, nil, errorf(gz, -1, "%v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return gz, nil, errorf(gz, -1, "not gzip data: %v", err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(zr, idxMaxBytes+1)); err != nil {
		return gz, nil, errorf(gz, -1, "corrupt gzip data after %d bytes: %v", buf.Len(), err)
	}
	if buf.Len() > idxMaxBytes {
		return gz, nil, errorf(gz, -1, "oversized: more than %d bytes decompressed", idxMaxBytes)
	}
	return gz, buf.Bytes(), nil
}

// idxHeader checks the magic number and returns the dimensions and the data after the header.
func idxHeader(path string, b []byte, magic uint32, ndims int) ([]int, []byte, error) {
	head := 4 + 4*ndims
	if len(b) < head {
		return nil, nil, errorf(path, -1, "truncated header: %d bytes, want %d", len(b), head)
	}
	if got := binary.BigEndian.Uint32(b); got != magic {
		return nil, nil, errorf(path, -1, "magic number %#08x, want %#08x (unsigned bytes, %d dimensions)", got, magic, ndims)
	}
	dims := make([]int, ndims)
	for i := range dims {
		d := binary.BigEndian.Uint32(b[4+4*i:])
		if d > idxMaxItems {
			return nil, nil, errorf(path, -1, "dimension %d is %d, more than %d", i, d, idxMaxItems)
		}
		dims[i] = int(d)
	}
	return dims, b[head:], nil
}

// checkBody checks that body holds exactly n records of size bytes.
func checkBody(path string, body []byte, n, size int) error {
	want := n * size
	switch {
	case len(body) < want:
		return errorf(path, len(body)/size, "truncated: the header announces %d records of %d bytes (%d bytes), the file holds %d", n, size, want, len(body))
	case len(body) > want:
		return errorf(path, n, "oversized: %d bytes after the %d records the header announces", len(body)-want, n)
	}
	return nil
}
