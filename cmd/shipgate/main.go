// Command shipgate deploys apps through metric-gated canaries. See
// docs/cli.md, or run shipgate --help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shipgate/shipgate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
