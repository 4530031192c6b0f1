// Command trainer trains the bundled CNN on the CPU. Run it with --help for its flags, environment
// variables and exit codes.
package main

import (
	"os"

	"github.com/kubetrain/kubetrain/trainer/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
