// Command pause is the sandbox process of every pod on the harness's nodes: it
// sleeps until told to stop, like registry.k8s.io/pause, which is not pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
