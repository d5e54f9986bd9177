package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// netnsDir is where `ip netns add` keeps namespace handles.
	netnsDir = "/run/netns"
	// markerDir holds one file per live lab prefix with the owning PID, so a
	// sweep can tell a running lab from one whose process died.
	markerDir = "/run/raftvip-lab"
	// staleAge is how old a namespace without a marker must be before a
	// sweep removes it (younger ones may belong to a lab being built).
	staleAge = 10 * time.Minute
)

// labNS matches the namespace names labs create and captures the prefix.
var labNS = regexp.MustCompile(`^(rv[a-z0-9]{5})-(hub|cl|n[0-9]+)$`)

var (
	sweepOnce  sync.Once
	signalOnce sync.Once
	liveMu     sync.Mutex
	live       = map[*Lab]struct{}{}
)

// register records a lab for the signal handler and installs the handler.
func register(l *Lab) {
	liveMu.Lock()
	live[l] = struct{}{}
	liveMu.Unlock()
	signalOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			liveMu.Lock()
			labs := make([]*Lab, 0, len(live))
			for l := range live {
				labs = append(labs, l)
			}
			liveMu.Unlock()
			for _, l := range labs {
				for _, err := range l.teardown() {
					fmt.Fprintf(os.Stderr, "lab %s teardown on %v: %v\n", l.prefix, sig, err)
				}
			}
			os.Exit(2)
		}()
	})
}

func unregister(l *Lab) {
	liveMu.Lock()
	delete(live, l)
	liveMu.Unlock()
}

// run executes a command and returns its combined output; the error names
// the command and carries the output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// listNamespaces returns the named namespaces whose names start with prefix.
func listNamespaces(prefix string) []string {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// deleteNamespace kills whatever still runs inside ns, then removes it.
func deleteNamespace(ns string) error {
	if out, err := run("ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if _, err := run("ip", "netns", "del", ns); err != nil {
		if _, statErr := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// writeMarker records this process as the owner of prefix.
func writeMarker(prefix string) error {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return fmt.Errorf("marker directory: %w", err)
	}
	return os.WriteFile(filepath.Join(markerDir, prefix), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

func removeMarker(prefix string) error {
	err := os.Remove(filepath.Join(markerDir, prefix))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ownerAlive reports whether the process recorded for prefix still runs.
// ok is false when there is no readable marker.
func ownerAlive(prefix string) (alive, ok bool) {
	b, err := os.ReadFile(filepath.Join(markerDir, prefix))
	if err != nil {
		return false, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false, false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM), true
}

// sweepStale removes lab namespaces left by runs that died without cleanup:
// those whose marker names a dead process, and those without a marker that
// are older than minAge; then markers of dead processes that no longer have
// namespaces. Namespaces of live labs are never touched.
func sweepStale(minAge time.Duration) error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		m := labNS.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		prefix := m[1]
		alive, ok := ownerAlive(prefix)
		if alive {
			continue
		}
		if !ok {
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < minAge {
				continue
			}
		}
		if err := deleteNamespace(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	markers, err := os.ReadDir(markerDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, m := range markers {
		prefix := m.Name()
		if alive, ok := ownerAlive(prefix); (ok && alive) || len(listNamespaces(prefix+"-")) > 0 {
			continue
		}
		errs = append(errs, removeMarker(prefix))
	}
	return errors.Join(errs...)
}
