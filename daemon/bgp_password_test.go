package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBGPPasswordFileSetsEveryRouter(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "bgp-password")
	if err := os.WriteFile(pw, []byte("s3cret, with=signs \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := bgpConfig()
	c.BGPPeers = []string{"198.51.100.1,64500", "198.51.100.2,64500,hold=9s"}
	c.BGPPasswordFile = pw
	p, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range p.BGP.Peers {
		// Only the line break goes: a password may end in a space.
		if peer.Password != "s3cret, with=signs " {
			t.Errorf("router %s password %q, want the file's line", peer.Address, peer.Password)
		}
	}
	// Without the file the inline password= still works.
	c = bgpConfig()
	c.BGPPeers = []string{"198.51.100.1,64500,password=inline"}
	if p, err = c.Validate(); err != nil || p.BGP.Peers[0].Password != "inline" {
		t.Fatalf("inline password: %v %+v", err, p)
	}
}

func TestBGPPasswordFileRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	empty := write("empty", "\n", 0o600)
	twoLines := write("two-lines", "a\nb\n", 0o600)
	good := write("good", "Zq9secret\n", 0o600)
	cases := []struct {
		name   string
		change func(c *Config)
		flag   string
		want   string // the message must contain it
	}{
		{"missing file", func(c *Config) { c.BGPPasswordFile = missing }, "bgp-password-file", missing},
		{"directory", func(c *Config) { c.BGPPasswordFile = dir }, "bgp-password-file", dir},
		{"empty file", func(c *Config) { c.BGPPasswordFile = empty }, "bgp-password-file", "empty"},
		{"two lines", func(c *Config) { c.BGPPasswordFile = twoLines }, "bgp-password-file", "more than one line"},
		{"password in both places", func(c *Config) {
			c.BGPPasswordFile, c.BGPPeers = good, []string{"198.51.100.1,64500,password=x"}
		}, "bgp-password-file", "198.51.100.1"},
		{"l2 mode", func(c *Config) { c.Mode, c.BGPAS, c.BGPPeers, c.BGPPasswordFile = ModeL2, "", nil, good }, "bgp-password-file", good},
	}
	if os.Geteuid() != 0 {
		unreadable := write("unreadable", "pw\n", 0o000)
		cases = append(cases, struct {
			name   string
			change func(c *Config)
			flag   string
			want   string
		}{"unreadable file", func(c *Config) { c.BGPPasswordFile = unreadable }, "bgp-password-file", "permission denied"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := bgpConfig()
			c.Interface = "eth0"
			tc.change(&c)
			_, err := c.Validate()
			var fe *FlagError
			if !errors.As(err, &fe) || fe.Flag != tc.flag {
				t.Fatalf("Validate = %v, want a FlagError for --%s", err, tc.flag)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "Zq9secret") {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}
