package cluster

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// etcdArgs runs a single-member etcd on loopback. fsync is off: the data
// dies with the test, and fsync latency on a shared disk only adds noise.
func etcdArgs(dataDir string, clientPort, peerPort int) []string {
	client := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))
	return []string{
		"--name=default",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
}

// apiserverArgs configures kube-apiserver with static tokens, Node+RBAC
// authorization and dual-stack service ranges. On loopback the "kubernetes"
// Service gets no endpoints: the endpoint reconciler refuses loopback.
func apiserverArgs(bind string, port int, etcdURL string, f controlPlaneFiles) []string {
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + bind,
		"--advertise-address=" + bind,
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + f.tlsCert,
		"--tls-private-key-file=" + f.tlsKey,
		"--cert-dir=" + f.apiserverCert,
		"--token-auth-file=" + f.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=" + serviceCIDRs(bind),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f.saPublic,
		"--service-account-signing-key-file=" + f.saPrivate,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
	if ip := net.ParseIP(bind); ip != nil && ip.IsLoopback() {
		args = append(args, "--endpoint-reconciler-type=none")
	}
	return args
}

// kcmArgs runs the chosen controllers with the admin identity, without
// leader election, serving only its health endpoint on loopback.
func kcmArgs(kubeconfig string, controllers []string, port int, certDir string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--allocate-node-cidrs=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Clean(certDir),
		"--profiling=false",
	}
}
