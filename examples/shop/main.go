// Command shop is the sample app that Shipgate deploys in its demo and
// end-to-end tests. See package shopapp for its flags and failure modes.
package main

import (
	"os"

	"github.com/shipgate/shipgate/examples/shop/shopapp"
)

func main() { os.Exit(shopapp.Main(os.Args[1:])) }
