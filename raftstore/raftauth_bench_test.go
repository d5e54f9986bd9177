package raftstore

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// BenchmarkHandshake measures what a new Raft connection costs the accepting
// side and the dialler together: the mutual TLS 1.3 handshake with P-256 keys,
// the dialler's check that the certificate is the server it meant, the
// acceptor's voter check against the configuration, and the decoding and
// ID check of the first RPC before raft would see it.
func BenchmarkHandshake(b *testing.B) {
	ca := newTestCA(b, "ca")
	cfg := raft.Configuration{Servers: []raft.Server{
		{ID: "server", Suffrage: raft.Voter}, {ID: "client", Suffrage: raft.Voter},
	}}
	serverStream, err := newStreamLayer("127.0.0.1:0", "", ca.tlsConfig(b, "server"), testLogger())
	if err != nil {
		b.Fatal(err)
	}
	server := newMuxLayer(serverStream, func(c net.Conn) { c.Close() }, testLogger())
	defer server.Close()
	allow := func(id Identity) error { return mayRaft(id, cfg, nil) }
	server.mayRaft.Store(&allow)
	clientStream, err := newStreamLayer("127.0.0.1:0", "", ca.tlsConfig(b, "client"), testLogger())
	if err != nil {
		b.Fatal(err)
	}
	client := newMuxLayer(clientStream, nil, testLogger())
	defer client.Close()
	addr := server.Addr().String()
	at := func(a string) (string, bool) { return "server", a == addr }
	client.serverAt.Store(&at)
	go func() {
		for {
			c, err := server.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var t [1]byte
				if _, err := c.Read(t[:]); err == nil {
					_, _ = c.Write(t[:])
				}
			}()
		}
	}()
	var rpc bytes.Buffer
	rpc.WriteByte(rpcTimeoutNow)
	h := &codec.MsgpackHandle{}
	h.TimeNotBuiltin = true
	if err := codec.NewEncoder(&rpc, h).Encode(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ID: []byte("client"), Addr: []byte("x")}}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c, err := client.Dial(raft.ServerAddress(addr), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(rpc.Bytes()); err != nil {
			b.Fatal(err)
		}
		var t [1]byte
		if _, err := c.Read(t[:]); err != nil || t[0] != rpcTimeoutNow {
			b.Fatalf("first RPC not delivered: %v", err)
		}
		c.Close()
	}
}
