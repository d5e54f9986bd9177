package watchers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client-side rate limits. client-go's default (5 QPS) would take minutes to write
// the status of a thousand Services; Events get their own budget so a storm of them
// never delays status writes.
const (
	clientQPS    = 200
	clientBurst  = 400
	eventsQPS    = 50
	eventsBurst  = 100
	userAgent    = "raftvip"
	probeTimeout = 5 * time.Second
)

// Backoff between attempts to reach the API server.
const (
	connectBackoffMin = 500 * time.Millisecond
	connectBackoffMax = 30 * time.Second
)

// Clients are the API clients the daemon uses: Main for reads and status writes,
// Events for Events.
type Clients struct {
	Main   kubernetes.Interface
	Events kubernetes.Interface
}

// NewClients builds clients from a kubeconfig file. It does not contact the server.
func NewClients(kubeconfig string) (*Clients, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
	}
	return clientsFor(cfg)
}

func clientsFor(cfg *rest.Config) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = userAgent
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	// Protobuf decodes several times cheaper than JSON, which matters for a watch on
	// every EndpointSlice in the cluster.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	main, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	ecfg := rest.CopyConfig(cfg)
	ecfg.QPS, ecfg.Burst = eventsQPS, eventsBurst
	events, err := kubernetes.NewForConfig(ecfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes events client: %w", err)
	}
	return &Clients{Main: main, Events: events}, nil
}

// Connect returns clients once the API server behind kubeconfig answers, retrying
// with exponential backoff (the kubeconfig may name a control-plane VIP that this
// very agent has not brought up yet). It gives up only when ctx is done; it logs the
// first failure and then every failure at the maximum backoff, not each attempt.
func Connect(ctx context.Context, kubeconfig string, log *slog.Logger) (*Clients, error) {
	backoff := connectBackoffMin
	for attempt := 1; ; attempt++ {
		c, err := NewClients(kubeconfig)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			_, err = c.Main.Discovery().RESTClient().Get().AbsPath("/version").DoRaw(pctx)
			cancel()
			if err == nil {
				if attempt > 1 {
					log.Info("kubernetes API server answers", "attempts", attempt)
				}
				return c, nil
			}
		}
		if attempt == 1 || backoff == connectBackoffMax {
			log.Warn("kubernetes API server not reachable yet; retrying (the control-plane VIP is unaffected)",
				"err", err, "retry_in", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
		backoff = min(backoff*2, connectBackoffMax)
	}
}
