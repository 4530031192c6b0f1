package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubetrain/kubetrain/internal/contract"
)

func writeSyntheticCIFAR(t *testing.T, train, test int) (string, *Dataset) {
	t.Helper()
	dir := t.TempDir()
	ds := Synthetic(1, train, test)
	if err := WriteCIFAR10(dir, ds); err != nil {
		t.Fatal(err)
	}
	return dir, ds
}

func TestCIFAR10RoundTrip(t *testing.T) {
	dir, want := writeSyntheticCIFAR(t, 23, 7)
	got, err := LoadCIFAR10(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Train, got.Train); diff != "" {
		t.Errorf("train split (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Test, got.Test); diff != "" {
		t.Errorf("test split (-want,+got):\n%s", diff)
	}
}

// TestCIFAR10Errors damages one file of a valid directory and checks the error names the file, the
// record and what was expected.
func TestCIFAR10Errors(t *testing.T) {
	cases := map[string]struct {
		file    string
		damage  func(b []byte) []byte
		wantErr []string
	}{
		"missing": {"data_batch_3.bin", func([]byte) []byte { return nil }, []string{"data_batch_3.bin", "missing"}},
		"empty":   {"test_batch.bin", func([]byte) []byte { return []byte{} }, []string{"test_batch.bin", "empty"}},
		"truncated": {"data_batch_2.bin", func(b []byte) []byte { return b[:len(b)-100] }, []string{
			"data_batch_2.bin", "record 4", "truncated", "2973 bytes of a 3073-byte record"}},
		"oversized": {"data_batch_1.bin", func([]byte) []byte { return make([]byte, (CIFARRecordsInFile+1)*CIFARRecordSize) }, []string{
			"data_batch_1.bin", "record 10000", "oversized", "10001 records, want at most 10000"}},
		"mislabelled": {"data_batch_5.bin", func(b []byte) []byte { b[2*CIFARRecordSize] = 10; return b }, []string{
			"data_batch_5.bin", "record 2", "label 10, want 0..9"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir, _ := writeSyntheticCIFAR(t, 23, 7)
			path := filepath.Join(dir, tc.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if nb := tc.damage(b); nb == nil {
				os.Remove(path)
			} else if err := os.WriteFile(path, nb, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = LoadCIFAR10(dir)
			checkErr(t, err, tc.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a *data.Error", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// idxFile encodes an IDX file of unsigned bytes.
func idxFile(magic uint32, dims []uint32, body []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(body)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// writeIDX writes a small valid IDX directory (train 6 images, test 4, 5x3 pixels), gzipped or not,
// with files replaced by override (by name, without ".gz"; nil removes the file).
func writeIDX(t *testing.T, gzipped bool, override map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	pix := func(n int) []byte {
		b := make([]byte, n*15)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	files := map[string][]byte{
		IDXTrainImages: idxFile(idxMagicImages, []uint32{6, 5, 3}, pix(6)),
		IDXTrainLabels: idxFile(idxMagicLabels, []uint32{6}, []byte{0, 1, 2, 3, 9, 5}),
		IDXTestImages:  idxFile(idxMagicImages, []uint32{4, 5, 3}, pix(4)),
		IDXTestLabels:  idxFile(idxMagicLabels, []uint32{4}, []byte{9, 8, 7, 6}),
	}
	for name, b := range override {
		files[name] = b
	}
	for name, b := range files {
		if b == nil {
			continue
		}
		path := filepath.Join(dir, name)
		if gzipped {
			b, path = gz(b), path+".gz"
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestIDX(t *testing.T) {
	for _, gzipped := range []bool{false, true} {
		ds, err := LoadIDX(writeIDX(t, gzipped, nil))
		if err != nil {
			t.Fatalf("gzipped=%v: %v", gzipped, err)
		}
		if ds.Train.Len() != 6 || ds.Test.Len() != 4 || ds.Train.Height != 5 || ds.Train.Width != 3 || ds.Train.Channels != 1 {
			t.Errorf("gzipped=%v: loaded %d+%d images of %v, want 6+4 of [5 3 1]", gzipped, ds.Train.Len(), ds.Test.Len(), ds.Train.Shape())
		}
		if diff := cmp.Diff([]byte{9, 8, 7, 6}, ds.Test.Labels); diff != "" {
			t.Errorf("test labels (-want,+got):\n%s", diff)
		}
	}
}

func TestIDXErrors(t *testing.T) {
	cases := map[string]struct {
		gzipped  bool
		override map[string][]byte
		wantErr  []string
	}{
		"missing": {false, map[string][]byte{IDXTestLabels: nil}, []string{IDXTestLabels, "missing"}},
		"bad magic": {false, map[string][]byte{IDXTrainImages: idxFile(0x00000801, []uint32{6, 5, 3}, make([]byte, 90))},
			[]string{IDXTrainImages, "magic number 0x00000801, want 0x00000803"}},
		"truncated header": {true, map[string][]byte{IDXTrainLabels: {0, 0, 8}}, []string{IDXTrainLabels + ".gz", "truncated header"}},
		"truncated images": {false, map[string][]byte{IDXTrainImages: idxFile(idxMagicImages, []uint32{6, 5, 3}, make([]byte, 80))},
			[]string{IDXTrainImages, "record 5", "truncated", "6 records of 15 bytes"}},
		"oversized images": {true, map[string][]byte{IDXTestImages: idxFile(idxMagicImages, []uint32{4, 5, 3}, make([]byte, 61))},
			[]string{IDXTestImages + ".gz", "record 4", "oversized", "1 bytes after the 4 records"}},
		"label count": {false, map[string][]byte{IDXTestLabels: idxFile(idxMagicLabels, []uint32{3}, []byte{1, 2, 3})},
			[]string{IDXTestLabels, "3 labels for the 4 images"}},
		"mislabelled": {true, map[string][]byte{IDXTrainLabels: idxFile(idxMagicLabels, []uint32{6}, []byte{0, 1, 2, 30, 4, 5})},
			[]string{IDXTrainLabels + ".gz", "record 3", "label 30, want 0..9"}},
		"huge header": {false, map[string][]byte{IDXTrainLabels: idxFile(idxMagicLabels, []uint32{1 << 31}, nil)},
			[]string{IDXTrainLabels, "more than"}},
		"corrupt gzip": {true, map[string][]byte{IDXTestImages: []byte("not gzip")}, []string{IDXTestImages + ".gz", "gzip"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			override := tc.override
			if tc.gzipped && name == "corrupt gzip" {
				// Written as is: the writer would otherwise gzip the garbage into valid gzip.
				dir := writeIDX(t, true, nil)
				os.WriteFile(filepath.Join(dir, IDXTestImages+".gz"), []byte("not gzip"), 0o644)
				_, err := LoadIDX(dir)
				checkErr(t, err, tc.wantErr)
				return
			}
			_, err := LoadIDX(writeIDX(t, tc.gzipped, override))
			checkErr(t, err, tc.wantErr)
		})
	}
}

func TestLoadURIs(t *testing.T) {
	cifarDir, _ := writeSyntheticCIFAR(t, 10, 5)
	cases := map[string]struct {
		uri, format string
		wantTrain   int
		wantConfig  string // a ConfigError saying this
		wantData    string // a data Error saying this
	}{
		"synthetic":       {uri: contract.SyntheticDatasetURI, wantTrain: SyntheticTrain},
		"file cifar10":    {uri: "file://" + cifarDir, format: contract.FormatCIFAR10, wantTrain: 10},
		"s3 not yet":      {uri: "s3://bucket/prefix", format: contract.FormatCIFAR10, wantConfig: "not supported yet"},
		"unknown scheme":  {uri: "http://example.com/x", format: contract.FormatCIFAR10, wantConfig: `scheme "http"`},
		"file with host":  {uri: "file://data/cifar", format: contract.FormatCIFAR10, wantConfig: "three slashes"},
		"bad format":      {uri: "file://" + cifarDir, format: "png", wantConfig: `"png" is not one of`},
		"other synthetic": {uri: "synthetic://mnist", wantConfig: "the only synthetic dataset"},
		"wrong format":    {uri: "file://" + cifarDir, format: contract.FormatIDX, wantData: "missing"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ds, err := Load(tc.uri, tc.format, 1)
			var ce *ConfigError
			var de *Error
			switch {
			case tc.wantConfig != "":
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantConfig) {
					t.Fatalf("error %v, want a ConfigError saying %q", err, tc.wantConfig)
				}
			case tc.wantData != "":
				if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.wantData) {
					t.Fatalf("error %v, want a data Error saying %q", err, tc.wantData)
				}
			case err != nil:
				t.Fatal(err)
			case ds.Train.Len() != tc.wantTrain:
				t.Errorf("%d training examples, want %d", ds.Train.Len(), tc.wantTrain)
			}
		})
	}
}

func TestGather(t *testing.T) {
	s := &Split{Images: []uint8{0, 255, 51, 102}, Labels: []uint8{3, 4}, Height: 1, Width: 2, Channels: 1}
	dst, labels := make([]float32, 4), make([]uint8, 2)
	s.Gather(dst, labels, []int{1, 0})
	if diff := cmp.Diff([]float32{0.2, 0.4, 0, 1}, dst); diff != "" {
		t.Errorf("pixels (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint8{4, 3}, labels); diff != "" {
		t.Errorf("labels (-want,+got):\n%s", diff)
	}
}

// A file far larger than its format allows is refused from its size, before it is read: a sparse
// 16 GiB file costs neither the time nor the memory to read it.
func TestHugeFilesAreRefusedUnread(t *testing.T) {
	grow := func(t *testing.T, path string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(16 << 30); err != nil {
			t.Skipf("cannot make a sparse file here: %v", err)
		}
	}
	t.Run("cifar10", func(t *testing.T) {
		dir, _ := writeSyntheticCIFAR(t, 23, 7)
		grow(t, filepath.Join(dir, "data_batch_2.bin"))
		_, err := LoadCIFAR10(dir)
		checkErr(t, err, []string{"data_batch_2.bin", "oversized", "want at most 10000"})
	})
	t.Run("idx", func(t *testing.T) {
		dir := writeIDX(t, false, nil)
		grow(t, filepath.Join(dir, IDXTrainImages))
		_, err := LoadIDX(dir)
		checkErr(t, err, []string{IDXTrainImages, "oversized: 17179869184 bytes, want at most 2147483648"})
	})
}
