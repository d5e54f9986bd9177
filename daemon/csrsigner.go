package daemon

import (
	"context"
	"fmt"
	"os"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
	"github.com/raftvip/raftvip/workercert"
)

// csrResync is how often the leader looks at unanswered CSRs again without a
// change to them: one filed before this node became leader, or for a Node that
// could not be read.
const csrResync = 2 * time.Second

// defaultWorkerCertLifetime is the lifetime of a worker certificate when
// --worker-cert-lifetime is not given: a day, renewed after 16 hours, so a
// stolen one is short-lived and a failing signer has 8 hours to be noticed.
const defaultWorkerCertLifetime = 24 * time.Hour

// csrSigner answers worker CSRs on the leader: the only node that writes to the
// API, and one that holds the cluster CA (--tls-ca-key).
type csrSigner struct {
	d             *Daemon
	cache         *watchers.CSRSigner
	caPEM, keyPEM []byte
	// answered holds the resourceVersion of each CSR already acted on, so the
	// cache's lag after our own write does not answer it twice.
	answered map[types.UID]string
	// undecided holds the CSRs whose "not decided yet" was logged, so a Node
	// that cannot be read logs once per CSR, not every resync.
	undecided map[types.UID]bool
}

// csrSignerLoop keeps a warm cache of raftvip.io/worker CSRs on every voter with
// the CA and, while this node leads, answers each one.
func (d *Daemon) csrSignerLoop(ctx context.Context) {
	caPEM, err := os.ReadFile(d.cfg.TLSCACert)
	if err == nil {
		var keyPEM []byte
		keyPEM, err = os.ReadFile(d.cfg.TLSCAKey)
		if err == nil {
			err = d.runCSRSigner(ctx, caPEM, keyPEM)
		}
	}
	if err != nil {
		d.log.Error("worker certificate signer disabled: --tls-csr workers get no certificate from this node", "err", err)
	}
}

func (d *Daemon) runCSRSigner(ctx context.Context, caPEM, keyPEM []byte) error {
	clients, err := watchers.Connect(ctx, d.cfg.Kubeconfig, d.log)
	if err != nil {
		return err
	}
	cache, err := watchers.NewCSRSigner(clients.Main, workercert.SignerName)
	if err != nil {
		return err
	}
	go cache.Run(ctx)
	s := &csrSigner{d: d, cache: cache, caPEM: caPEM, keyPEM: keyPEM, answered: map[types.UID]string{}, undecided: map[types.UID]bool{}}
	tick := time.NewTicker(csrResync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cache.Changed():
		case <-tick.C:
		}
		if d.node.IsLeader() {
			s.pass(ctx)
		}
	}
}

// pass answers every unanswered CSR once.
func (s *csrSigner) pass(ctx context.Context) {
	servers, err := s.d.node.Servers()
	if err != nil {
		s.d.log.Warn("worker certificate signer: read the raft configuration", "err", err)
		return
	}
	suffrage := map[string]string{}
	for _, sv := range servers {
		suffrage[sv.ID] = sv.Suffrage
	}
	pending := map[types.UID]bool{}
	for _, csr := range s.cache.Unanswered() {
		pending[csr.UID] = true
		if s.answered[csr.UID] == csr.ResourceVersion {
			continue
		}
		if s.answer(ctx, csr, suffrage) {
			s.answered[csr.UID] = csr.ResourceVersion
		}
	}
	for uid := range s.answered {
		if !pending[uid] {
			delete(s.answered, uid)
		}
	}
	for uid := range s.undecided {
		if !pending[uid] {
			delete(s.undecided, uid)
		}
	}
}

// answer decides one CSR and writes the answer; false means decide again later.
func (s *csrSigner) answer(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, suffrage map[string]string) bool {
	log := s.d.log.With("csr", csr.Name, "requester", csr.Spec.Username)
	extra := map[string][]string{}
	for k, v := range csr.Spec.Extra {
		extra[k] = []string(v)
	}
	var usages []string
	for _, u := range csr.Spec.Usages {
		usages = append(usages, string(u))
	}
	dec := workercert.Decide(workercert.Request{
		SignerName: csr.Spec.SignerName, Username: csr.Spec.Username, Groups: csr.Spec.Groups,
		Extra: extra, Usages: usages, PEM: csr.Spec.Request,
	}, workercert.Facts{
		Namespace: s.d.cfg.Namespace,
		Node: func(name string) (workercert.Node, bool, error) {
			uid, addrs, found, err := s.cache.Node(ctx, name)
			return workercert.Node{UID: uid, Addresses: addrs}, found, err
		},
		Voter: func(name string) bool {
			v, ok := suffrage[name]
			return ok && v != raftstore.SuffrageNonvoter
		},
	})
	switch dec.Verdict {
	case workercert.Ignore:
		return true
	case workercert.Retry:
		if !s.undecided[csr.UID] {
			s.undecided[csr.UID] = true
			log.Warn("worker certificate request not decided yet; trying again", "reason", dec.Reason, "retry_every", csrResync)
		}
		return false
	case workercert.Deny:
		var err error
		if watchers.Approved(csr) {
			err = s.cache.Fail(ctx, csr, dec.Reason)
		} else {
			err = s.cache.Deny(ctx, csr, dec.Reason)
		}
		if err != nil {
			log.Warn("worker certificate request: write the denial", "err", err)
			return false
		}
		log.Warn("denied a worker certificate request", "reason", dec.Reason)
		return true
	}
	if !watchers.Approved(csr) {
		approved, err := s.cache.Approve(ctx, csr, dec.Reason)
		if err != nil {
			log.Warn("worker certificate request: write the approval", "err", err)
			return false
		}
		csr = approved
	}
	ttl := s.lifetime(csr)
	certPEM, err := raftstore.SignWorkerCert(s.caPEM, s.keyPEM, dec.Request.PublicKey, dec.NodeName, dec.IPs, ttl)
	if err == nil {
		err = s.cache.Issue(ctx, csr, certPEM)
	}
	if err != nil {
		log.Error("worker certificate request approved but not signed", "node", dec.NodeName, "err", err)
		return false
	}
	log.Info("signed a worker certificate", "node", dec.NodeName, "ips", fmt.Sprint(dec.IPs), "lifetime", ttl)
	return true
}

// lifetime is --worker-cert-lifetime, or less when the CSR asks for less.
func (s *csrSigner) lifetime(csr *certificatesv1.CertificateSigningRequest) time.Duration {
	ttl := s.d.cfg.WorkerCertLifetime
	if ttl == 0 {
		ttl = defaultWorkerCertLifetime
	}
	if e := csr.Spec.ExpirationSeconds; e != nil && time.Duration(*e)*time.Second < ttl {
		ttl = time.Duration(*e) * time.Second
	}
	return ttl
}
