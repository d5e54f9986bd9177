// Package bgp announces this node's VIPs to routers over BGP, through an
// embedded gobgp/v3 server (in process; its gRPC API is not started).
//
// A Speaker advertises one /32 (IPv4) or /128 (IPv6) path per VIP it is told
// to hold, with the node's own address of the same family as next hop, to
// every configured peer. Every peer is configured for both IPv4 and IPv6
// unicast (MP-BGP), so one session carries both families whatever its
// transport. The Speaker only dials (it does not listen unless
// Config.ListenPort asks it to); a peer that cannot be reached is retried every
// few seconds and shows as down, it never makes New fail or block.
//
// The daemon decides what a node advertises (what the Raft FSM says the node
// owns, nothing while fenced); this package only makes the advertised set
// equal to what it is given (Set), withdraws everything (WithdrawAll), and on
// Close withdraws and ends the sessions with a Cease NOTIFICATION so routers
// drop the node's paths at once instead of after their hold time.
//
// # Peer syntax (--bgp-peer, repeatable)
//
//	ADDRESS,AS[,port=N][,password=S][,multihop=N][,hold=DURATION]
//
//	ADDRESS   the router's IPv4 or IPv6 address (no zone)
//	AS        the router's AS number in decimal (asplain), 1..4294967295;
//	          equal to --bgp-as makes the session iBGP, anything else eBGP
//	port      the router's TCP port, 1..65535 (default 179)
//	password  TCP MD5 signature key (RFC 2385); it cannot contain a comma
//	multihop  eBGP multihop TTL, 1..255 (default: directly connected, TTL 1;
//	          iBGP sessions are not TTL-limited and ignore it)
//	hold      proposed hold time, a Go duration of whole seconds from 3s to
//	          65535s (default 90s); keepalives are sent every third of it
//
// Example: --bgp-peer 198.51.100.1,64500,hold=9s,password=s3cret
//
// # Pool options (per-pool path attributes)
//
//	community=C[,community=C...][,local-pref=N]
//
//	community   a standard community "ASN:VALUE" (both 0..65535) or one of
//	            the well-known names no-export, no-advertise,
//	            no-export-subconfed; repeat the option for several
//	local-pref  LOCAL_PREF, 1..4294967295 (default: none sent, which routers
//	            read as 100). BGP sends LOCAL_PREF only inside an AS, so only
//	            iBGP peers see it; eBGP peers get the path without it.
//
// Example: community=65000:100,community=no-export,local-pref=200
//
// The empty string is valid and means no extra attributes.
//
// # Listening and Multipath TCP
//
// Go 1.24 and later open listening sockets as Multipath TCP where the kernel
// allows it, and an MPTCP socket refuses TCP_MD5SIG and IP_TTL. gobgp's
// listener (only opened when Config.ListenPort is set) then cannot check TCP
// MD5 passwords, and sessions dialled in by password-protected routers never
// come up. The binary that embeds a listening Speaker must be built with
// `godebug multipathtcp=0` (go.mod) or `//go:debug multipathtcp=0` (package
// main). Dialled sessions, the default, are plain TCP and unaffected.
package bgp
