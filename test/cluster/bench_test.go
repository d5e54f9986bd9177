package cluster

import (
	"os"
	"testing"
	"time"
)

// BenchmarkStart measures a warm start of the control plane (binaries
// cached): from nothing to a ready API server with a ready dual-stack
// ServiceCIDR and a healthy controller manager. ns/op includes the stop;
// s/start is the start alone.
func BenchmarkStart(b *testing.B) {
	bins, err := binariesOnce()
	if err != nil {
		b.Fatal(err)
	}
	opts, err := Options{}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	var starting time.Duration
	n := 0
	for b.Loop() {
		dir, err := os.MkdirTemp("", "bench-controlplane-")
		if err != nil {
			b.Fatal(err)
		}
		cp := newControlPlane(dir, bins, opts)
		t0 := time.Now()
		err = cp.start(b.Context(), opts)
		starting += time.Since(t0)
		n++
		cp.shutdown(b, true)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(starting.Seconds()/float64(n), "s/start")
}

// BenchmarkAPIServerRestart measures an API outage's recovery: kube-apiserver
// killed and started again until /readyz passes (etcd keeps the data).
func BenchmarkAPIServerRestart(b *testing.B) {
	cp := Start(b, Options{NoControllerManager: true})
	for b.Loop() {
		cp.StopAPIServer(b)
		cp.StartAPIServer(b)
	}
}
