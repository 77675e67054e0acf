// Package demo runs the self-contained story behind `shipgate demo`: a
// control plane in a temporary directory, the example shop app behind the
// builtin router under steady traffic, a healthy canary promoted and a bad
// one rolled back by itself.
package demo

import (
	"context"
	"errors"
	"io"
)

// Options tune the demo.
type Options struct {
	// JSON, when true, prints the final summary as JSON instead of text.
	JSON bool
}

// Run runs the demo, printing progress to out. It returns nil only if the
// story went as it should.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	_, _, _ = ctx, out, opts
	return errors.New("demo: not written yet")
}
