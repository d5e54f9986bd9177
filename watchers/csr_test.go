package watchers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// answerWith makes the fake API server give every created CSR a name and, on
// the first read back, the status answer.
func answerWith(client *fake.Clientset, answer func(*certificatesv1.CertificateSigningRequest)) {
	client.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		csr.Name = csr.GenerateName + "x1"
		return false, nil, nil
	})
	client.PrependReactor("get", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := client.Tracker().Get(certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests"), "", a.(k8stesting.GetAction).GetName())
		if err != nil {
			return true, nil, err
		}
		csr := obj.(*certificatesv1.CertificateSigningRequest).DeepCopy()
		answer(csr)
		return true, csr, nil
	})
}

func TestRequestCertificate(t *testing.T) {
	req := CertificateRequest{NodeName: "w1", SignerName: "raftvip.io/worker", PEM: []byte("csr"), Usages: []string{"server auth", "client auth"}}
	for _, tc := range []struct {
		name   string
		answer func(*certificatesv1.CertificateSigningRequest)
		cert   string
		err    string
		denied bool
	}{
		{"signed", func(c *certificatesv1.CertificateSigningRequest) { c.Status.Certificate = []byte("cert") }, "cert", "", false},
		{"denied", func(c *certificatesv1.CertificateSigningRequest) {
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Message: `Node "w1" does not exist`}}
		}, "", `Node "w1" does not exist`, true},
		{"failed", func(c *certificatesv1.CertificateSigningRequest) {
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue, Message: "CA expired"}}
		}, "", "signing failed: CA expired", false},
		{"no answer", func(*certificatesv1.CertificateSigningRequest) {}, "", "no answer from the raftvip leader", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			answerWith(client, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			cert, err := RequestCertificate(ctx, client, req)
			if tc.err == "" {
				if err != nil || string(cert) != tc.cert {
					t.Fatalf("got %q, %v", cert, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, ErrCSRDenied) != tc.denied {
				t.Fatalf("got %v, want %q (denied %v)", err, tc.err, tc.denied)
			}
			created, err := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "raftvip-w1-x1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if created.Spec.SignerName != req.SignerName || string(created.Spec.Request) != "csr" || len(created.Spec.Usages) != 2 {
				t.Fatalf("filed CSR %+v", created.Spec)
			}
		})
	}
}

func TestRequestCertificateDeletedCSR(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		csr.Name = "raftvip-w1-gone"
		return true, csr, nil
	})
	_, err := RequestCertificate(context.Background(), client, CertificateRequest{NodeName: "w1"})
	if err == nil || !strings.Contains(err.Error(), "was deleted before it was signed") {
		t.Fatalf("got %v", err)
	}
}

func TestCSRSignerAnswers(t *testing.T) {
	pending := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: "raftvip.io/worker"}}
	signed := pending.DeepCopy()
	signed.Name, signed.Status.Certificate = "b", []byte("cert")
	client := fake.NewClientset(pending, signed, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1", UID: "u1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.21"}, {Type: corev1.NodeHostName, Address: "w1"},
	}}})
	s, err := NewCSRSigner(client, "raftvip.io/worker")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Unanswered()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	un := s.Unanswered()
	if len(un) != 1 || un[0].Name != "a" {
		t.Fatalf("unanswered %v, want only the pending CSR", un)
	}
	uid, addrs, found, err := s.Node(ctx, "w1")
	if err != nil || !found || uid != "u1" || len(addrs) != 1 || addrs[0].String() != "10.0.0.21" {
		t.Fatalf("Node w1: %s %v %v %v", uid, addrs, found, err)
	}
	if _, _, found, err := s.Node(ctx, "ghost"); found || err != nil {
		t.Fatalf("missing Node: found %v, %v", found, err)
	}
	approved, err := s.Approve(ctx, un[0], "ok")
	if err != nil || !Approved(approved) {
		t.Fatalf("approve: %v", err)
	}
	if err := s.Issue(ctx, approved, []byte("signed")); err != nil {
		t.Fatal(err)
	}
	got, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, "a", metav1.GetOptions{})
	if err != nil || !Approved(got) || string(got.Status.Certificate) != "signed" {
		t.Fatalf("after approve and issue: %+v, %v", got.Status, err)
	}
	if err := s.Deny(ctx, signed, "no"); err != nil {
		t.Fatal(err)
	}
	if err := s.Fail(ctx, signed, "broken"); err != nil {
		t.Fatal(err)
	}
	got, err = client.CertificatesV1().CertificateSigningRequests().Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := csrOutcome(got); !done || err == nil {
		t.Fatalf("denied CSR outcome: %v %v (%+v)", done, err, got.Status.Conditions)
	}
}
