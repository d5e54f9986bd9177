package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
	"github.com/raftvip/raftvip/workercert"
)

// csrTimeout bounds one certificate request: long enough for a leader that is
// being elected, short enough that a renewal that gets no answer is retried
// (CertSource retries well before the current certificate expires).
const csrTimeout = time.Minute

// Backoff between attempts to get the first certificate. A worker whose Node is
// not registered yet is denied until the kubelet registers it, so it keeps asking.
const (
	csrRetryMin = time.Second
	csrRetryMax = time.Minute
)

// checkCSR refuses --tls-csr where it cannot work: with another certificate
// source, on a voter (a CSR certificate never carries the control-plane
// Organization, so peers would refuse it as a voter), or without a way to reach
// the API server.
func (p *Parsed) checkCSR() error {
	if !p.TLSCSR {
		return nil
	}
	if p.TLSCAKey != "" || p.TLSCert != "" {
		return flagErr("tls-csr", "", "give one of --tls-ca-key, --tls-cert/--tls-key and --tls-csr, not several")
	}
	if p.IsVoter {
		return flagErr("tls-csr", "", "is for workers: a CSR-signed certificate can never make a node a voter; control-plane nodes (--bootstrap, --peer, --join --control-plane) give --tls-ca-key")
	}
	if p.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return flagErr("tls-csr", "", "needs --kubeconfig, or to run in a pod with a ServiceAccount token (raftvip manifest daemonset)")
	}
	return nil
}

// csrCertSource gets this worker's first certificate through a CSR, waiting (and
// asking again) until the leader signs one or ctx ends, and returns the source
// that renews it the same way. The key is made here and never leaves the process.
func (p *Parsed) csrCertSource(ctx context.Context, log *slog.Logger) (*raftstore.CertSource, error) {
	clients, err := watchers.Connect(ctx, p.Kubeconfig, log)
	if err != nil {
		return nil, flagErr("tls-csr", "", "reach the API server: %v", err)
	}
	ips := []net.IP{p.Advertise.AsSlice()}
	issue := func() (tls.Certificate, error) {
		key, req, err := workercert.NewRequest(p.NodeName, ips)
		if err != nil {
			return tls.Certificate{}, err
		}
		rctx, cancel := context.WithTimeout(ctx, csrTimeout)
		defer cancel()
		certPEM, err := watchers.RequestCertificate(rctx, clients.Main, watchers.CertificateRequest{
			NodeName: p.NodeName, SignerName: workercert.SignerName, PEM: req, Usages: workercert.Usages,
		})
		if err != nil {
			return tls.Certificate{}, err
		}
		return workercert.Certificate(certPEM, key, p.NodeName)
	}
	backoff := csrRetryMin
	for {
		first, err := issue()
		if err == nil {
			log.Info("worker certificate signed by the raftvip leader", "subject", first.Leaf.Subject.CommonName,
				"not_after", first.Leaf.NotAfter.Format(time.RFC3339))
			src, err := raftstore.NewCSRCertSource(first, issue, log)
			if err != nil {
				return nil, flagErr("tls-csr", "", "%v", err)
			}
			return src, nil
		}
		log.Error("no worker certificate yet; asking again", "signer", workercert.SignerName,
			"denied", errors.Is(err, watchers.ErrCSRDenied), "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, flagErr("tls-csr", "", "stopped before the leader signed a certificate: %v", err)
		case <-t.C:
		}
		backoff = min(backoff*2, csrRetryMax)
	}
}
