package watchers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// csrPoll bounds how often a worker re-reads its CSR while it waits for an answer.
const (
	csrPollMin = 200 * time.Millisecond
	csrPollMax = 2 * time.Second
)

// CertificateRequest is a CSR a worker files for its own certificate. It asks
// for no lifetime: the signer's --worker-cert-lifetime decides.
type CertificateRequest struct {
	NodeName   string
	SignerName string
	PEM        []byte
	Usages     []string
}

// ErrCSRDenied is wrapped by RequestCertificate when the signer refused.
var ErrCSRDenied = errors.New("certificate signing request denied")

// RequestCertificate files r as a CertificateSigningRequest and waits until it
// is signed (returning status.certificate), denied or failed, or ctx ends. It
// needs only create and get on certificatesigningrequests.
func RequestCertificate(ctx context.Context, client kubernetes.Interface, r CertificateRequest) ([]byte, error) {
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "raftvip-" + r.NodeName + "-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    r.PEM,
			SignerName: r.SignerName,
		},
	}
	for _, u := range r.Usages {
		csr.Spec.Usages = append(csr.Spec.Usages, certificatesv1.KeyUsage(u))
	}
	api := client.CertificatesV1().CertificateSigningRequests()
	created, err := api.Create(ctx, csr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create CertificateSigningRequest for %q: %w", r.NodeName, err)
	}
	name := created.Name
	wait := csrPollMin
	for {
		if cert, done, err := csrOutcome(created); done {
			if err != nil {
				return nil, fmt.Errorf("CertificateSigningRequest %s: %w", name, err)
			}
			return cert, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("CertificateSigningRequest %s: no answer from the raftvip leader: %w", name, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(wait*2, csrPollMax)
		got, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("CertificateSigningRequest %s was deleted before it was signed", name)
			}
			continue
		}
		created = got
	}
}

// csrOutcome reports a CSR's final answer: its certificate, or why there is none.
func csrOutcome(csr *certificatesv1.CertificateSigningRequest) ([]byte, bool, error) {
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateDenied:
			return nil, true, fmt.Errorf("%w: %s", ErrCSRDenied, c.Message)
		case certificatesv1.CertificateFailed:
			return nil, true, fmt.Errorf("signing failed: %s", c.Message)
		}
	}
	if len(csr.Status.Certificate) > 0 {
		return csr.Status.Certificate, true, nil
	}
	return nil, false, nil
}

// CSRSigner is the leader's side: a cache of the CSRs for one signer name and
// the writes that answer them. Every voter with the CA keeps one warm; only the
// leader answers.
type CSRSigner struct {
	client   kubernetes.Interface
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	changed  chan struct{}
}

// NewCSRSigner watches the CSRs whose spec.signerName is signer; nothing is
// read before Run.
func NewCSRSigner(client kubernetes.Interface, signer string) (*CSRSigner, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", signer).String()
	}))
	s := &CSRSigner{client: client, factory: f, informer: f.Certificates().V1().CertificateSigningRequests().Informer(), changed: make(chan struct{}, 1)}
	notify := func(any) {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	if _, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: notify, UpdateFunc: func(_, o any) { notify(o) },
	}); err != nil {
		return nil, fmt.Errorf("certificatesigningrequests informer: %w", err)
	}
	return s, nil
}

// Run fills the cache until ctx ends.
func (s *CSRSigner) Run(ctx context.Context) {
	s.factory.Start(ctx.Done())
	<-ctx.Done()
	s.factory.Shutdown()
}

// Changed receives after any CSR was added or changed.
func (s *CSRSigner) Changed() <-chan struct{} { return s.changed }

// Unanswered returns the cached CSRs with no certificate and no Denied or
// Failed condition: new ones, and approved ones not yet signed. They are shared
// with the cache and must not be modified.
func (s *CSRSigner) Unanswered() []*certificatesv1.CertificateSigningRequest {
	var out []*certificatesv1.CertificateSigningRequest
	for _, o := range s.informer.GetStore().List() {
		csr, ok := o.(*certificatesv1.CertificateSigningRequest)
		if !ok {
			continue
		}
		if _, done, _ := csrOutcome(csr); !done {
			out = append(out, csr)
		}
	}
	return out
}

// Approved reports whether csr carries the Approved condition.
func Approved(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved {
			return true
		}
	}
	return false
}

// Node reads the Node name: found false when it does not exist.
func (s *CSRSigner) Node(ctx context.Context, name string) (uid string, addrs []net.IP, found bool, err error) {
	n, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("get Node %q: %w", name, err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip := net.ParseIP(a.Address); ip != nil {
			addrs = append(addrs, ip)
		}
	}
	return string(n.UID), addrs, true, nil
}

// Approve adds the Approved condition (the approval subresource) and returns the
// updated object.
func (s *CSRSigner) Approve(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, message string) (*certificatesv1.CertificateSigningRequest, error) {
	return s.approval(ctx, csr, certificatesv1.CertificateApproved, "RaftvipWorkerApproved", message)
}

// Deny adds the Denied condition with message, which the worker reports.
func (s *CSRSigner) Deny(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, message string) error {
	_, err := s.approval(ctx, csr, certificatesv1.CertificateDenied, "RaftvipWorkerDenied", message)
	return err
}

func (s *CSRSigner) approval(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, typ certificatesv1.RequestConditionType, reason, message string) (*certificatesv1.CertificateSigningRequest, error) {
	c := csr.DeepCopy()
	c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastUpdateTime: metav1.Now(),
	})
	out, err := s.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("CertificateSigningRequest %s: %s: %w", csr.Name, typ, err)
	}
	return out, nil
}

// Fail adds the Failed condition: approved, but the signer will not sign.
func (s *CSRSigner) Fail(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, message string) error {
	return s.status(ctx, csr, func(c *certificatesv1.CertificateSigningRequest) {
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue, Reason: "RaftvipWorkerRefused", Message: message, LastUpdateTime: metav1.Now(),
		})
	})
}

// Issue writes the signed certificate (PEM) into status.certificate.
func (s *CSRSigner) Issue(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, certPEM []byte) error {
	return s.status(ctx, csr, func(c *certificatesv1.CertificateSigningRequest) { c.Status.Certificate = certPEM })
}

func (s *CSRSigner) status(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, change func(*certificatesv1.CertificateSigningRequest)) error {
	c := csr.DeepCopy()
	change(c)
	if _, err := s.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("CertificateSigningRequest %s: status: %w", csr.Name, err)
	}
	return nil
}
