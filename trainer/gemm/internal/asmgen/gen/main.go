// Command gen writes trainer/gemm/kernel_amd64.s; `go generate ./trainer/gemm` runs it.
package main

import (
	"log"
	"os"

	"github.com/kubetrain/kubetrain/trainer/gemm/internal/asmgen"
)

func main() {
	if err := os.WriteFile("kernel_amd64.s", []byte(asmgen.Generate()), 0o644); err != nil {
		log.Fatal(err)
	}
}
