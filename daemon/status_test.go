package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStateIsServedToThisHostOnly(t *testing.T) {
	h := newStatusHandler(fakeStatus{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name, remote, local string
		want                int
	}{
		{"IPv4 loopback", "127.0.0.1:40000", "127.0.0.1:7951", http.StatusOK},
		{"IPv6 loopback", "[::1]:40000", "[::1]:7951", http.StatusOK},
		{"this host over its own address", "10.0.0.11:40000", "10.0.0.11:7951", http.StatusOK},
		{"this host, v4-mapped", "[::ffff:10.0.0.11]:40000", "10.0.0.11:7951", http.StatusOK},
		{"another host", "10.0.0.12:40000", "10.0.0.11:7951", http.StatusForbidden},
		{"another host, no local address", "10.0.0.12:40000", "", http.StatusForbidden},
		{"garbage remote", "somewhere", "10.0.0.11:7951", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/state", nil)
			req.RemoteAddr = tc.remote
			if tc.local != "" {
				local, err := net.ResolveTCPAddr("tcp", tc.local)
				if err != nil {
					t.Fatal(err)
				}
				req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.Addr(local)))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("GET /state from %s: %d %s, want %d", tc.remote, rec.Code, rec.Body, tc.want)
			}
			// The rest of the status server answers everyone who can reach it.
			req.URL.Path = "/raft/status"
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /raft/status from %s: %d", tc.remote, rec.Code)
			}
		})
	}
}

func TestListenStatus(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ln, err := listenStatus("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if logs.Len() != 0 {
		t.Fatalf("loopback status server logged %q", logs.String())
	}
	// The same address again cannot be bound: one error naming the flag.
	_, err = listenStatus(ln.Addr().String(), log)
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Flag != "status-address" || !strings.Contains(err.Error(), ln.Addr().String()) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("occupied address: %v, want one --status-address error naming it", err)
	}
	wide, err := listenStatus(":0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer wide.Close()
	if n := strings.Count(logs.String(), "status server reachable from other hosts"); n != 1 {
		t.Fatalf("exposed status server warned %d times, want once: %q", n, logs.String())
	}
}
