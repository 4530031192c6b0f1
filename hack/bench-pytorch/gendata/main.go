// Command gendata writes the trainer's synthetic CIFAR-10-shaped dataset as CIFAR-10 binary files,
// so that the side-by-side benchmark feeds PyTorch and the Go trainer the same images.
package main

import (
	"flag"
	"log"
	"os"

	"github.com/kubetrain/kubetrain/trainer/data"
)

func main() {
	dir := flag.String("dir", "", "directory to write data_batch_1..5.bin and test_batch.bin into")
	train := flag.Int("train", 50000, "training images")
	test := flag.Int("test", 10000, "test images")
	seed := flag.Uint64("seed", 1, "seed")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := data.WriteCIFAR10(*dir, data.Synthetic(*seed, *train, *test)); err != nil {
		log.Fatal(err)
	}
}
