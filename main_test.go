package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// agentBin is the raftvip binary under test: $RAFTVIP_BIN (make test builds it) or one
// built once for this test run.
var agentBin string

func TestMain(m *testing.M) {
	code := func() int {
		agentBin = os.Getenv("RAFTVIP_BIN")
		if agentBin == "" {
			dir, err := os.MkdirTemp("", "raftvip-bin")
			if err != nil {
				panic(err)
			}
			defer os.RemoveAll(dir)
			agentBin = filepath.Join(dir, "raftvip")
			out, err := exec.Command("go", "build", "-o", agentBin, ".").CombinedOutput()
			if err != nil {
				os.Stderr.Write(out)
				panic(err)
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// run executes the binary and returns its exit code and combined output.
func run(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		t.Fatalf("run %v: %v", args, err)
		return -1, ""
	}
}

func TestVersion(t *testing.T) {
	code, out := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "raftvip ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: code %d, output %q", code, out)
	}
}

func TestHelpExplainsEveryAgentFlag(t *testing.T) {
	code, out := run(t, nil, "agent", "--help")
	if code != 0 {
		t.Fatalf("agent --help exit %d: %s", code, out)
	}
	for _, f := range agentFlags() {
		name := f.Names()[0]
		if !strings.Contains(out, "--"+name) {
			t.Errorf("agent --help does not mention --%s", name)
		}
		if !strings.Contains(out, envName(name)) {
			t.Errorf("agent --help does not mention the environment variable %s", envName(name))
		}
	}
}
