package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// unhealthyAfter is how many failed checks in a row mark the local API server down:
// one lost probe under load must not move the control plane.
const unhealthyAfter = 3

// apiServerChecker probes the local kube-apiserver's liveness endpoint.
type apiServerChecker struct {
	url    string
	client *http.Client
}

func newAPIServerChecker(url, caFile string, timeout time.Duration) (*apiServerChecker, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-cert %q: %w", caFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca-cert %q: no PEM certificate found", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	} else {
		// Without the cluster CA we can only ask "is something answering"; say so once.
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	tr.DisableKeepAlives = true
	return &apiServerChecker{url: url, client: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

func (c *apiServerChecker) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// healthTracker turns a stream of probe results into a debounced healthy/unhealthy
// state: healthy on the first success, unhealthy after unhealthyAfter failures.
type healthTracker struct {
	known    bool
	healthy  bool
	failures int
}

// observe records one probe and reports whether the debounced state changed.
func (h *healthTracker) observe(ok bool) (changed bool) {
	if ok {
		h.failures = 0
		if !h.known || !h.healthy {
			h.known, h.healthy = true, true
			return true
		}
		return false
	}
	h.failures++
	if h.failures >= unhealthyAfter && (!h.known || h.healthy) {
		h.known, h.healthy = true, false
		return true
	}
	return false
}
