// Command etcd is etcd's own server, built from its Go module so that the
// Kubernetes tests (internal/kubetest) can run a control plane on a machine
// that can only reach the Go module proxy. It is etcd's main, nothing more.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
