package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// K8sVersion is the Kubernetes release the test control plane is built from;
// it names the binary cache directory, so bumping test/k8s bumps it too.
const K8sVersion = "v1.37.2"

// EnvBinDir overrides where the built binaries are cached, for machines whose
// home directory is small or shared.
const EnvBinDir = "RAFTVIP_K8S_BIN_DIR"

// buildScript is the script, relative to the repository root, that builds
// and caches the binaries; `make k8s-bins` runs the same script.
const buildScript = "test/k8s/build.sh"

// binDirPrefix starts the line on build.sh's stdout that names the cache.
const binDirPrefix = "RAFTVIP_K8S_BIN_DIR="

// Binaries holds the paths of the three control-plane programs, so callers
// outside Start (benchmarks, lab harnesses) can run them too.
type Binaries struct {
	Etcd              string
	APIServer         string
	ControllerManager string
}

// EnsureBinaries returns the cached binaries, building them first with
// test/k8s/build.sh when they are missing or stale (about ten minutes on two
// cores the first time, instant afterwards). Build progress goes to progress.
// Outside the repository it falls back to the cache directory alone.
func EnsureBinaries(ctx context.Context, progress io.Writer) (Binaries, error) {
	wd, err := os.Getwd()
	if err != nil {
		return Binaries{}, fmt.Errorf("find %s: %w", buildScript, err)
	}
	return ensureBinaries(ctx, wd, os.Getenv, progress)
}

// ensureBinaries is EnsureBinaries from directory wd with environment getenv.
func ensureBinaries(ctx context.Context, wd string, getenv func(string) string, progress io.Writer) (Binaries, error) {
	if script, ok := findUp(wd, buildScript); ok {
		dir, err := runBuildScript(ctx, script, getenv, progress)
		if err != nil {
			return Binaries{}, err
		}
		return binariesIn(dir)
	}
	dir := defaultBinDir(getenv)
	b, err := binariesIn(dir)
	if err != nil {
		return Binaries{}, fmt.Errorf("%w (and %s was not found above %s): run `make k8s-bins` in the raftvip repository", err, buildScript, wd)
	}
	return b, nil
}

// binariesOnce runs EnsureBinaries once per test process: every Start after
// the first reuses its answer.
var binariesOnce = sync.OnceValues(func() (Binaries, error) {
	return EnsureBinaries(context.Background(), os.Stderr)
})

// findUp looks for rel in dir and each of its parents.
func findUp(dir, rel string) (string, bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for {
		p := filepath.Join(dir, rel)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// defaultBinDir mirrors build.sh's choice of cache directory.
func defaultBinDir(getenv func(string) string) string {
	if d := getenv(EnvBinDir); d != "" {
		return d
	}
	cache := getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(getenv("HOME"), ".cache")
	}
	return filepath.Join(cache, "raftvip", "k8s-"+K8sVersion+"-static")
}

// runBuildScript runs build.sh and returns the directory it reports.
func runBuildScript(ctx context.Context, script string, getenv func(string) string, progress io.Writer) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	if d := getenv(EnvBinDir); d != "" {
		cmd.Env = append(os.Environ(), EnvBinDir+"="+d)
	}
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, progress)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s failed (run `make k8s-bins` to see why): %w\n%s", script, err, lastLines(stderr.String(), 30))
	}
	dir, err := parseBinDir(stdout.String())
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	return dir, nil
}

// parseBinDir finds the last RAFTVIP_K8S_BIN_DIR= line in build.sh's stdout.
func parseBinDir(out string) (string, error) {
	dir := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), binDirPrefix); ok {
			dir = d
		}
	}
	if dir == "" {
		return "", errors.New("no " + binDirPrefix + " line in output")
	}
	return dir, nil
}

// binariesIn checks that all three programs are present and executable.
func binariesIn(dir string) (Binaries, error) {
	b := Binaries{
		Etcd:              filepath.Join(dir, "etcd"),
		APIServer:         filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
	}
	for _, p := range []string{b.Etcd, b.APIServer, b.ControllerManager} {
		st, err := os.Stat(p)
		if err != nil {
			return Binaries{}, fmt.Errorf("kubernetes test binary: %w", err)
		}
		if st.Mode().Perm()&0o111 == 0 {
			return Binaries{}, fmt.Errorf("kubernetes test binary %s is not executable", p)
		}
	}
	return b, nil
}

// lastLines keeps the tail of a log for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
