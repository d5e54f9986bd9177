package daemon

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/watchers"
	"github.com/raftvip/raftvip/workercert"
)

// newTestSigner is the leader's signer over a fake API server holding Node w1.
func newTestSigner(t *testing.T, lifetime time.Duration) (*csrSigner, *fake.Clientset) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := writeTestCA(t, dir)
	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", UID: "u1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.21"}}}})
	cache, err := watchers.NewCSRSigner(client, workercert.SignerName)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: &Parsed{Config: Config{Namespace: "kube-system", WorkerCertLifetime: lifetime}}, log: slog.New(slog.DiscardHandler)}
	return &csrSigner{d: d, cache: cache, caPEM: caPEM, keyPEM: keyPEM, answered: map[types.UID]string{}, undecided: map[types.UID]bool{}}, client
}

// workerCSR files a worker CSR for name from a DaemonSet pod on node.
func workerCSR(t *testing.T, client *fake.Clientset, name, node string, change func(*certificatesv1.CertificateSigningRequest)) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	_, req, err := workercert.NewRequest(name, []net.IP{net.ParseIP("10.0.0.21")})
	if err != nil {
		t.Fatal(err)
	}
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "raftvip-" + name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			SignerName: workercert.SignerName, Request: req,
			Username: "system:serviceaccount:kube-system:raftvip-worker",
			Extra:    map[string]certificatesv1.ExtraValue{workercert.ExtraNodeName: {node}, workercert.ExtraNodeUID: {"u1"}},
			Usages:   []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth, certificatesv1.UsageClientAuth},
		},
	}
	if change != nil {
		change(csr)
	}
	out, err := client.CertificatesV1().CertificateSigningRequests().Create(context.Background(), csr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readCSR(t *testing.T, client *fake.Clientset, name string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	csr, err := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func conditionOf(csr *certificatesv1.CertificateSigningRequest, typ certificatesv1.RequestConditionType) (string, bool) {
	for _, c := range csr.Status.Conditions {
		if c.Type == typ {
			return c.Message, true
		}
	}
	return "", false
}

func TestCSRSignerApprovesAndSignsWorkerProfile(t *testing.T) {
	s, client := newTestSigner(t, time.Hour)
	ttl := int32(900)
	csr := workerCSR(t, client, "w1", "w1", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.ExpirationSeconds = &ttl })
	if !s.answer(context.Background(), csr, map[string]string{"cp1": raftstore.SuffrageVoter}) {
		t.Fatal("answer asks to retry")
	}
	got := readCSR(t, client, csr.Name)
	if !watchers.Approved(got) || len(got.Status.Certificate) == 0 {
		t.Fatalf("status %+v", got.Status)
	}
	block, _ := pem.Decode(got.Status.Certificate)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "w1" || len(leaf.Subject.Organization) != 0 {
		t.Fatalf("signed %v", leaf.Subject)
	}
	if life := time.Until(leaf.NotAfter); life > 15*time.Minute || life < 14*time.Minute {
		t.Fatalf("lifetime %s, want the 15 minutes the CSR asked for (less than --worker-cert-lifetime)", life)
	}
}

func TestCSRSignerDenies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		csrName  string
		node     string
		suffrage map[string]string
		want     string
	}{
		{"node missing", "ghost", "ghost", nil, `Node "ghost" does not exist`},
		{"name mismatch", "w2", "w1", nil, `bound to node "w1"`},
		{"a voter's name", "w1", "w1", map[string]string{"w1": raftstore.SuffrageVoter}, "is a voter"},
		{"a staging server's name", "w1", "w1", map[string]string{"w1": raftstore.SuffrageStaging}, "is a voter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, client := newTestSigner(t, time.Hour)
			csr := workerCSR(t, client, tc.csrName, tc.node, nil)
			if !s.answer(context.Background(), csr, tc.suffrage) {
				t.Fatal("answer asks to retry")
			}
			got := readCSR(t, client, csr.Name)
			msg, denied := conditionOf(got, certificatesv1.CertificateDenied)
			if !denied || !strings.Contains(msg, tc.want) || len(got.Status.Certificate) != 0 {
				t.Fatalf("status %+v, want Denied with %q", got.Status, tc.want)
			}
		})
	}
}

// An administrator's approval does not make raftvip sign what it would deny: the
// CSR is marked Failed instead.
func TestCSRSignerFailsApprovedButInvalid(t *testing.T) {
	s, client := newTestSigner(t, time.Hour)
	csr := workerCSR(t, client, "ghost", "ghost", func(c *certificatesv1.CertificateSigningRequest) {
		c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
	})
	if !s.answer(context.Background(), csr, nil) {
		t.Fatal("answer asks to retry")
	}
	got := readCSR(t, client, csr.Name)
	if msg, failed := conditionOf(got, certificatesv1.CertificateFailed); !failed || !strings.Contains(msg, "does not exist") || len(got.Status.Certificate) != 0 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestCSRSignerIgnoresOtherSigners(t *testing.T) {
	s, client := newTestSigner(t, time.Hour)
	csr := workerCSR(t, client, "w1", "w1", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "kubernetes.io/kubelet-serving" })
	if !s.answer(context.Background(), csr, nil) {
		t.Fatal("answer asks to retry")
	}
	if got := readCSR(t, client, csr.Name); len(got.Status.Conditions) != 0 || len(got.Status.Certificate) != 0 {
		t.Fatalf("another signer's CSR was answered: %+v", got.Status)
	}
}

// A Node that cannot be read leaves the CSR unanswered, to be decided again.
func TestCSRSignerRetriesWhenNodeUnreadable(t *testing.T) {
	s, client := newTestSigner(t, time.Hour)
	client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcd leader changed")
	})
	csr := workerCSR(t, client, "w1", "w1", nil)
	if s.answer(context.Background(), csr, nil) {
		t.Fatal("a CSR whose Node could not be read counts as answered")
	}
	if got := readCSR(t, client, csr.Name); len(got.Status.Conditions) != 0 || len(got.Status.Certificate) != 0 {
		t.Fatalf("answered without reading the Node: %+v", got.Status)
	}
	if !s.undecided[csr.UID] {
		t.Fatal("the retry was not recorded as logged")
	}
}
