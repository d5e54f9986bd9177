package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// controlPlaneFiles are the paths of what the programs read at start.
type controlPlaneFiles struct {
	dir           string
	tlsCert       string
	tlsKey        string
	saPrivate     string
	saPublic      string
	tokenFile     string
	apiserverCert string // --cert-dir, unused while tlsCert is set
}

// servingSANs lists the names clients may dial the API server by: the bind
// address, loopback, the first IP of each service range (the in-cluster
// "kubernetes" Service) and its DNS names, plus the caller's extras.
func servingSANs(bind string, extra []string) []string {
	sans := []string{
		bind, "127.0.0.1", "::1", "10.96.0.1", "fd00:10:96::1",
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	}
	return append(sans, extra...)
}

// writeFiles generates the CA, serving certificate, service-account key,
// tokens and kubeconfigs, and builds the admin client.
func (cp *ControlPlane) writeFiles(opts Options) (controlPlaneFiles, error) {
	f := controlPlaneFiles{
		dir:           cp.Dir,
		tlsCert:       filepath.Join(cp.Dir, "apiserver.crt"),
		tlsKey:        filepath.Join(cp.Dir, "apiserver.key"),
		saPrivate:     filepath.Join(cp.Dir, "sa.key"),
		saPublic:      filepath.Join(cp.Dir, "sa.pub"),
		tokenFile:     filepath.Join(cp.Dir, "tokens.csv"),
		apiserverCert: filepath.Join(cp.Dir, "apiserver-certs"),
	}
	ca, err := newCA("raftvip-test-ca")
	if err != nil {
		return f, err
	}
	cp.ca = ca
	serving, err := newServingCert(ca, "kube-apiserver", servingSANs(opts.BindAddress, opts.ExtraSANs))
	if err != nil {
		return f, err
	}
	saPriv, saPub, err := newServiceAccountKey()
	if err != nil {
		return f, err
	}
	users := append([]User{{Name: AdminUser, Groups: []string{"system:masters"}}, {Name: RaftvipUser}}, opts.Users...)
	tokens := map[string]User{}
	for _, u := range users {
		tok, err := newToken()
		if err != nil {
			return f, err
		}
		tokens[tok] = u
		cp.Tokens[u.Name] = tok
	}
	cp.CACertFile = filepath.Join(cp.Dir, "ca.crt")
	cp.CAKeyFile = filepath.Join(cp.Dir, "ca.key")
	for path, data := range map[string][]byte{
		cp.CACertFile: ca.CertPEM,
		cp.CAKeyFile:  ca.KeyPEM,
		f.tlsCert:     append(append([]byte{}, serving.CertPEM...), ca.CertPEM...),
		f.tlsKey:      serving.KeyPEM,
		f.saPrivate:   saPriv,
		f.saPublic:    saPub,
		f.tokenFile:   []byte(tokenFile(tokens)),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, fmt.Errorf("control plane file: %w", err)
		}
	}
	if cp.Kubeconfig, err = cp.writeKubeconfig(AdminUser, cp.Tokens[AdminUser]); err != nil {
		return f, err
	}
	if cp.RaftvipKubeconfig, err = cp.writeKubeconfig(RaftvipUser, cp.Tokens[RaftvipUser]); err != nil {
		return f, err
	}
	cp.RestConfig = cp.TokenRestConfig(cp.Tokens[AdminUser])
	if cp.Client, err = kubernetes.NewForConfig(cp.RestConfig); err != nil {
		return f, fmt.Errorf("admin client: %w", err)
	}
	return f, nil
}

// TokenRestConfig builds a client configuration presenting token that works even when
// the API server lives in a lab namespace. Rate limits are high so helpers
// and benchmarks measure the server, not client-side throttling.
func (cp *ControlPlane) TokenRestConfig(token string) *rest.Config {
	cfg := &rest.Config{
		Host:            cp.APIServerURL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.ca.CertPEM},
		QPS:             500,
		Burst:           1000,
	}
	if cp.netns != "" {
		cfg.Dial = dialer(cp.netns)
	}
	return cfg
}

// serviceCIDRs orders the dual-stack service ranges so the primary family is
// the bind address's, as the API server's "kubernetes" Service requires.
func serviceCIDRs(bind string) string {
	if ip := net.ParseIP(bind); ip != nil && ip.To4() == nil {
		return ServiceCIDRv6 + "," + ServiceCIDRv4
	}
	return ServiceCIDRv4 + "," + ServiceCIDRv6
}
