package cluster

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultBinDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"override wins", map[string]string{EnvBinDir: "/bins", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/bins"},
		{"xdg cache", map[string]string{"XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/raftvip/k8s-" + K8sVersion + "-static"},
		{"home cache", map[string]string{"HOME": "/home/u"}, "/home/u/.cache/raftvip/k8s-" + K8sVersion + "-static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := defaultBinDir(env(tc.env)); got != tc.want {
				t.Fatalf("defaultBinDir = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBuildScriptDefaultMatchesGo(t *testing.T) {
	script, ok := findUp(".", buildScript)
	if !ok {
		t.Fatalf("%s not found above the test directory", buildScript)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`K8S_VERSION=` + K8sVersion,
		`${RAFTVIP_K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/raftvip/k8s-${K8S_VERSION}-static}`,
		`echo "` + binDirPrefix + `$bin_dir"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q; keep it in step with binaries.go", script, want)
		}
	}
}

func TestFindUp(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := findUp(deep, "test/k8s/build.sh"); ok {
		t.Fatal("found a script that does not exist")
	}
	writeFile(t, filepath.Join(root, "a", "test", "k8s", "build.sh"), "", 0o755)
	got, ok := findUp(deep, "test/k8s/build.sh")
	if want := filepath.Join(root, "a", "test", "k8s", "build.sh"); !ok || got != want {
		t.Fatalf("findUp = %q, %v; want %q", got, ok, want)
	}
	if err := os.MkdirAll(filepath.Join(deep, "test", "k8s", "build.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := findUp(deep, "test/k8s/build.sh"); got == filepath.Join(deep, "test", "k8s", "build.sh") {
		t.Fatal("a directory was taken for the script")
	}
}

func TestParseBinDir(t *testing.T) {
	got, err := parseBinDir("noise\nRAFTVIP_K8S_BIN_DIR=/old\nmore\nRAFTVIP_K8S_BIN_DIR=/new\n")
	if err != nil || got != "/new" {
		t.Fatalf("parseBinDir = %q, %v; want the last line's /new", got, err)
	}
	if _, err := parseBinDir("built everything\n"); err == nil {
		t.Fatal("output without the directory line accepted")
	}
}

func fakeBinaries(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		writeFile(t, filepath.Join(dir, b), "#!/bin/sh\n", mode)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestBinariesIn(t *testing.T) {
	dir := t.TempDir()
	if _, err := binariesIn(dir); err == nil {
		t.Fatal("empty directory accepted")
	}
	fakeBinaries(t, dir, 0o644)
	if _, err := binariesIn(dir); err == nil || !strings.Contains(err.Error(), "not executable") {
		t.Fatalf("non-executable binaries: err %v", err)
	}
	fakeBinaries(t, dir, 0o755)
	b, err := binariesIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.APIServer != filepath.Join(dir, "kube-apiserver") || b.Etcd != filepath.Join(dir, "etcd") || b.ControllerManager != filepath.Join(dir, "kube-controller-manager") {
		t.Fatalf("binaries %+v", b)
	}
}

func TestEnsureBinariesRunsBuildScript(t *testing.T) {
	repo := t.TempDir()
	bins := filepath.Join(t.TempDir(), "bins")
	fakeBinaries(t, bins, 0o755)
	// The fake script echoes the directory it was given, proving the override
	// reaches it, and writes progress to stderr.
	writeFile(t, filepath.Join(repo, buildScript), `echo "building" >&2; echo "RAFTVIP_K8S_BIN_DIR=$RAFTVIP_K8S_BIN_DIR"`, 0o755)
	var progress strings.Builder
	b, err := ensureBinaries(t.Context(), filepath.Join(repo, "test", "cluster"), env(map[string]string{EnvBinDir: bins}), &progress)
	if err != nil {
		t.Fatal(err)
	}
	if b.Etcd != filepath.Join(bins, "etcd") {
		t.Fatalf("etcd at %q, want in %s", b.Etcd, bins)
	}
	if progress.String() != "building\n" {
		t.Fatalf("progress %q, want the script's stderr", progress.String())
	}
}

func TestEnsureBinariesReportsBuildFailure(t *testing.T) {
	repo := t.TempDir()
	writeFile(t, filepath.Join(repo, buildScript), `echo "go: compile error" >&2; exit 1`, 0o755)
	_, err := ensureBinaries(t.Context(), repo, env(nil), io.Discard)
	if err == nil {
		t.Fatal("failing build script accepted")
	}
	for _, want := range []string{"make k8s-bins", "go: compile error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestEnsureBinariesOutsideRepo(t *testing.T) {
	wd := t.TempDir()
	bins := t.TempDir()
	_, err := ensureBinaries(t.Context(), wd, env(map[string]string{EnvBinDir: bins}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "make k8s-bins") {
		t.Fatalf("missing binaries outside the repo: err %v, want advice to run make k8s-bins", err)
	}
	fakeBinaries(t, bins, 0o755)
	b, err := ensureBinaries(t.Context(), wd, env(map[string]string{EnvBinDir: bins}), io.Discard)
	if err != nil || b.APIServer != filepath.Join(bins, "kube-apiserver") {
		t.Fatalf("cached binaries outside the repo: %+v, %v", b, err)
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Fatalf("lastLines = %q", got)
	}
	if got := lastLines("a\n", 5); got != "a" {
		t.Fatalf("lastLines short = %q", got)
	}
}
