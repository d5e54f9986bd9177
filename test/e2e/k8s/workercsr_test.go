package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/raftvip/raftvip/daemon"
	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/test/agents"
	"github.com/raftvip/raftvip/watchers"
	"github.com/raftvip/raftvip/workercert"
)

// workerCertLifetime is what the voters sign worker certificates for: short, so
// the worker renews several times during the test.
const workerCertLifetime = 6 * time.Second

// TestWorkerCertificateThroughCSR: three TLS voters holding the cluster CA, and
// a worker holding only a ServiceAccount token of `raftvip manifest daemonset`
// bound to a Pod on its Node. The worker gets its certificate through a
// raftvip.io/worker CSR that the leader approves, joins as a nonvoter and renews
// the certificate the same way. A CSR for a Node that does not exist, or for
// another node than the token's, is denied; and a worker certificate cannot
// move the leader or its term through raw Raft RPCs.
func TestWorkerCertificateThroughCSR(t *testing.T) {
	e := startControlPlane(t)
	e.tls = true
	e.startAgents(t, func(int) []string { return []string{"--worker-cert-lifetime=" + workerCertLifetime.String()} })
	leader := e.leader(t)
	applyWorkerManifest(t, e.cp.Client)

	e.cp.CreateNode(t, "w1", e.l.NodeIP(voters).String())
	started := time.Now()
	worker := e.startWorker(t, "w1", voters, e.cp.TokenKubeconfig(t, workerToken(t, e, "w1")))
	var st daemon.RaftStatus
	poll(t, "the worker to join as a nonvoter with a CSR certificate", func() bool {
		if err := worker.getJSON(context.Background(), "/raft/status", &st); err != nil {
			return false
		}
		return st.Certificate != nil && st.Certificate.Source == raftstore.CertCSR && memberSuffrage(t, leader, "w1") == raftstore.SuffrageNonvoter
	})
	t.Logf("worker started, got its certificate through a CSR and joined in %s", time.Since(started).Round(time.Millisecond))
	if st.Voter || st.Certificate.Subject != "w1" {
		t.Fatalf("worker status: voter %v, certificate %+v", st.Voter, st.Certificate)
	}
	first := st.Certificate.NotAfter
	poll(t, "three renewals of the worker certificate", func() bool {
		return worker.getJSON(context.Background(), "/raft/status", &st) == nil && st.Certificate.Renewals >= 3
	})
	if !st.Certificate.NotAfter.After(first) || st.Certificate.Failures != 0 {
		t.Fatalf("after renewals: not after %s (first %s), %d failures (%s)", st.Certificate.NotAfter, first, st.Certificate.Failures, st.Certificate.LastError)
	}
	if life := time.Until(st.Certificate.NotAfter); life > workerCertLifetime {
		t.Fatalf("worker certificate lives %s, more than the leader's --worker-cert-lifetime %s", life, workerCertLifetime)
	}
	if got := memberSuffrage(t, leader, "w1"); got != raftstore.SuffrageNonvoter {
		t.Fatalf("after renewals the worker is %q in the leader's configuration", got)
	}
	checkSignedCSRs(t, e.cp.Client, "w1", 4)

	// A Pod bound to a Node that does not exist gets a token naming that node;
	// its CSR is denied.
	ghost := workerClient(t, e, "ghost")
	if _, err := requestFor(t, ghost, "ghost"); !errors.Is(err, watchers.ErrCSRDenied) || !strings.Contains(err.Error(), `Node "ghost" does not exist`) {
		t.Fatalf("CSR for a missing Node: %v", err)
	}
	// w1's token asking for another node's name is denied.
	e.cp.CreateNode(t, "w2", e.l.NodeIP(voters+1).String())
	w1 := workerClient(t, e, "w1")
	if _, err := requestFor(t, w1, "w2"); !errors.Is(err, watchers.ErrCSRDenied) || !strings.Contains(err.Error(), `bound to node "w1"`) {
		t.Fatalf("CSR for another node's name: %v", err)
	}

	// A valid worker certificate (w2's, obtained like the agent does) speaks raw
	// Raft to the leader: refused, and the leader keeps its leadership and term.
	w2 := workerClient(t, e, "w2")
	cert, err := requestFor(t, w2, "w2")
	if err != nil {
		t.Fatalf("w2's own CSR: %v", err)
	}
	if len(cert.Leaf.Subject.Organization) != 0 {
		t.Fatalf("worker certificate carries Organization %v", cert.Leaf.Subject.Organization)
	}
	before, err := leader.status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if errs := voteAsWorker(t, e, cert, leader, before.Term); errs["RequestVote"] == nil || errs["TimeoutNow"] == nil {
		t.Fatalf("the leader answered a worker's Raft RPCs: %v", errs)
	}
	time.Sleep(2 * time.Second)
	after, err := leader.status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.State != "Leader" || after.Term != before.Term {
		t.Fatalf("after a worker's RequestVote and TimeoutNow the leader is %s in term %d (was term %d)", after.State, after.Term, before.Term)
	}
	poll(t, "the leader's log line naming the refused worker", func() bool {
		b, _ := os.ReadFile(leader.logPath)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "refused raft rpc") && strings.Contains(l, `"peer":"w2"`) {
				return true
			}
		}
		return false
	})
}

// applyWorkerManifest creates the objects of `raftvip manifest daemonset` as
// docs/install-kubeadm.md applies them: the worker's ServiceAccount and RBAC are
// exactly what the test's worker runs with. The DaemonSet itself runs no pods
// here (there are no kubelets); the API server still validates it.
func applyWorkerManifest(t testing.TB, c kubernetes.Interface) {
	t.Helper()
	out, err := exec.Command(agents.Binary(t), "manifest", "daemonset", "--join=10.0.0.100:7950", "--interface=eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("manifest daemonset: %v\n%s", err, out)
	}
	ctx := context.Background()
	for _, doc := range strings.Split(string(out), "\n---\n") {
		if onlyComments([]byte(strings.TrimPrefix(doc, "---\n"))) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("manifest daemonset: %v\n%s", err, doc)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.DaemonSet:
			_, err = c.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("manifest daemonset: unexpected %T", obj)
		}
		if err != nil {
			t.Fatalf("manifest daemonset: create %T: %v", obj, err)
		}
	}
}

// workerToken is what the kubelet projects into the worker DaemonSet's pod on
// node: a token of the worker ServiceAccount bound to a Pod on that node (the
// API server records the node in the token). The Pod is created directly, as
// the DaemonSet controller would, and never runs.
func workerToken(t testing.TB, e *env, node string) string {
	t.Helper()
	ctx := context.Background()
	noToken := false
	pod, err := e.cp.Client.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "raftvip-worker-"},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: workercert.ServiceAccountName, AutomountServiceAccountToken: &noToken,
			Containers: []corev1.Container{{Name: "raftvip", Image: "registry.invalid/raftvip-test:none"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("worker pod on %s: %v", node, err)
	}
	secs := int64(3600)
	tr, err := e.cp.Client.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, workercert.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &secs,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("worker token on %s: %v", node, err)
	}
	return tr.Status.Token
}

// workerClient acts as the worker DaemonSet's pod on node.
func workerClient(t testing.TB, e *env, node string) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(e.cp.TokenRestConfig(workerToken(t, e, node)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requestFor files a worker CSR for name the way the agent does and returns the
// certificate paired with its key, or the error (a denial included).
func requestFor(t testing.TB, c kubernetes.Interface, name string) (tls.Certificate, error) {
	t.Helper()
	key, req, err := workercert.NewRequest(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	pemCert, err := watchers.RequestCertificate(ctx, c, watchers.CertificateRequest{
		NodeName: name, SignerName: workercert.SignerName, PEM: req, Usages: workercert.Usages,
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	return workercert.Certificate(pemCert, key, name)
}

// startWorker starts a --tls-csr worker on lab node i that joins through every voter.
func (e *env) startWorker(t *testing.T, name string, i int, kubeconfig string) *agent {
	t.Helper()
	a := e.newAgent(t, name, i, t.TempDir())
	a.args = append(a.args, "--tls-csr", "--tls-ca-cert="+e.cp.CACertFile, "--kubeconfig="+kubeconfig)
	for _, v := range e.agents {
		a.args = append(a.args, "--join="+v.raftAddr)
	}
	a.start(t)
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("---- %s log (tail) ----\n%s", a.name, tail(a.logPath, 40))
		}
	})
	return a
}

// memberSuffrage is id's suffrage in a's configuration, "" when not a member.
func memberSuffrage(t *testing.T, a *agent, id string) string {
	t.Helper()
	st, err := a.status(context.Background())
	if err != nil {
		return ""
	}
	for _, s := range st.Servers {
		if s.ID == id {
			return s.Suffrage
		}
	}
	return ""
}

// checkSignedCSRs checks that node's CSRs were approved and signed at least min
// times, each with the worker profile: CN node, no Organization.
func checkSignedCSRs(t *testing.T, c kubernetes.Interface, node string, min int) {
	t.Helper()
	list, err := c.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.signerName", workercert.SignerName).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	signed := 0
	for _, csr := range list.Items {
		if !strings.HasPrefix(csr.Name, "raftvip-"+node+"-") || len(csr.Status.Certificate) == 0 {
			continue
		}
		if !watchers.Approved(&csr) {
			t.Errorf("CSR %s signed without the Approved condition", csr.Name)
		}
		leaf, err := workerLeaf(csr)
		if err != nil {
			t.Fatalf("CSR %s: %v", csr.Name, err)
		}
		if leaf.Subject.CommonName != node || len(leaf.Subject.Organization) != 0 {
			t.Errorf("CSR %s signed for %v", csr.Name, leaf.Subject)
		}
		signed++
	}
	if signed < min {
		t.Fatalf("%d signed CSRs for %s, want at least %d", signed, node, min)
	}
}

func workerLeaf(csr certificatesv1.CertificateSigningRequest) (*x509.Certificate, error) {
	block, _ := pem.Decode(csr.Status.Certificate)
	if block == nil {
		return nil, errors.New("status.certificate holds no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// connRaft is the connection-kind byte raftvip peers send after the handshake
// to open a Raft connection (raftstore/mux.go).
const connRaft = 'R'

// workerStream dials a peer's Raft port the way a raftvip node does, with a
// worker's certificate, from a worker's lab node: the attacker's side of
// hashicorp/raft's transport.
type workerStream struct {
	net.Listener
	cfg  *tls.Config
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (s *workerStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := s.dial(ctx, "tcp", string(addr))
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, s.cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if _, err := c.Write([]byte{connRaft}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// voteAsWorker sends the leader a RequestVote with leadership transfer in a
// higher term and a TimeoutNow, claiming the certificate's own name, and returns
// the error each got.
func voteAsWorker(t *testing.T, e *env, cert tls.Certificate, leader *agent, term uint64) map[string]error {
	t.Helper()
	pool, err := raftstore.LoadCAPool(e.cp.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(&workerStream{Listener: ln, cfg: raftstore.MutualTLSConfig(cert, pool), dial: e.l.Dialer(e.l.Node(labNodes - 1))}, 1, 2*time.Second, io.Discard)
	defer trans.Close()
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(cert.Leaf.Subject.CommonName), Addr: []byte(ln.Addr().String())}
	id, addr := raft.ServerID(leader.name), raft.ServerAddress(leader.raftAddr)
	return map[string]error{
		"RequestVote": trans.RequestVote(id, addr, &raft.RequestVoteRequest{
			RPCHeader: hdr, Term: term + 10, LastLogIndex: 1 << 40, LastLogTerm: term + 10, LeadershipTransfer: true,
		}, &raft.RequestVoteResponse{}),
		"TimeoutNow": trans.TimeoutNow(id, addr, &raft.TimeoutNowRequest{RPCHeader: hdr}, &raft.TimeoutNowResponse{}),
	}
}

// BenchmarkWorkerCSR measures a worker certificate's round trip against the real
// API server and a TLS leader: key and CSR made, filed, approved and signed by
// the leader, read back (the worker polls from 200 ms, doubling). ms/cert is
// what a worker's start and each renewal wait for.
func BenchmarkWorkerCSR(b *testing.B) {
	e := startControlPlane(b)
	e.tls = true
	e.startAgents(b, nil)
	e.leader(b)
	applyWorkerManifest(b, e.cp.Client)
	e.cp.CreateNode(b, "w1", e.l.NodeIP(voters).String())
	c := workerClient(b, e, "w1")
	var total time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := requestFor(b, c, "w1"); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		n++
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms/cert")
}
