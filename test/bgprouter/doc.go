// Package bgprouter is the BGP router of raftvip's tests: a plain gobgp
// server that only listens (its neighbors are passive), standing in for a
// top-of-rack router, and the means to run it inside a netns lab and ask it
// what its RIB holds.
//
// # Why the router runs in a process of its own
//
// A network namespace belongs to an OS thread, and gobgp opens its sockets
// from goroutines it starts itself, which run on other threads, in the root
// namespace: its listeners are created by the Serve loop goroutine (StartBgp
// is executed there), and each peer dials from a fresh connectLoop goroutine
// (pkg/server/fsm.go). Switching one goroutine of the test process into a lab
// namespace (lab.RunInNS) therefore cannot keep either a passive or an active
// side inside it. gobgp also keeps route-selection options in package
// globals, shared by every server of a process, so several servers of one
// process are not independent routers either.
//
// So a lab test runs the router in a helper process: the test binary itself,
// re-executed inside the namespace by `ip netns exec` (StartProcess), which
// lives in the namespace as a whole, with all of gobgp's threads. The test
// package's TestMain hands control to HelperMain, which serves the Router RPC
// service (and any service the test package adds, such as one driving a
// raftvip Speaker) on a Unix socket. Path-bound Unix sockets are not tied to
// a network namespace, so the test reaches every helper from the root
// namespace over net/rpc; Remote is the client of a helper's router.
//
// A test that needs no namespace (a router and its peer on loopback) can run
// a Router inside its own process instead (Start).
//
// # Multipath TCP
//
// Go 1.24 and later open listening sockets as Multipath TCP, and an MPTCP
// socket refuses TCP_MD5SIG and IP_TTL: the router's listener then cannot
// check its neighbors' TCP MD5 signatures. A test package that runs a router
// must carry `//go:debug multipathtcp=0` in one of its _test.go files.
package bgprouter
