// Command etcd is the etcd server version that k8s.io/kubernetes requires,
// backing the test control plane's API server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
