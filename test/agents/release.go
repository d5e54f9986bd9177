package agents

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/raftvip/raftvip/test/lab"
)

// Release returns the raftvip binary of an earlier release, for upgrade and
// downgrade tests: the source of commit (a full or short hash, which survives
// clones that drop tags) is taken from this repository's history with git
// archive and built once, then cached by the resolved hash under the user cache
// dir (raftvip/release-HASH), so later runs skip the build.
func Release(t lab.TB, commit string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out, err := exec.Command("git", "-C", root, "rev-parse", "--verify", commit+"^{commit}").CombinedOutput()
	if err != nil {
		t.Fatalf("release %s: not in this repository's history (a shallow clone?): %v: %s", commit, err, out)
	}
	hash := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("release %s: %v", commit, err)
	}
	dir := filepath.Join(cache, "raftvip", "release-"+hash)
	bin := filepath.Join(dir, "raftvip")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	src := t.TempDir()
	if err := run(exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", root, hash, src))); err != nil {
		t.Fatalf("release %s: unpack its source: %v", commit, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("release %s: %v", commit, err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", bin+".tmp", ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := run(build); err != nil {
		t.Fatalf("release %s: build: %v", commit, err)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatalf("release %s: %v", commit, err)
	}
	return bin
}

// run runs cmd and folds its output into the error.
func run(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}
