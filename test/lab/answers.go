package lab

import (
	"net/netip"
	"regexp"
	"strings"
	"time"
)

var (
	arpRequest = regexp.MustCompile(`^(\S+) (\S+) > \S+, .*Request who-has (\S+) tell (\S+),`)
	arpAnswer  = regexp.MustCompile(`^(\S+) \S+ > (\S+), .*Reply (\S+) is-at (\S+),`)
	ndpRequest = regexp.MustCompile(`^(\S+) (\S+) > \S+, .*: (\S+) > \S+: ICMP6, neighbor solicitation, who has (\S+?),`)
	ndpAnswer  = regexp.MustCompile(`^(\S+) (\S+) > (\S+), .*neighbor advertisement, tgt is (\S+?),`)
)

// Answers is what a capture shows about the client's neighbour requests (ARP
// for IPv4, NDP solicitations for IPv6) for one address: how many it sent,
// which were answered by more than one MAC, and each reply's time and MAC in
// order.
type Answers struct {
	Requests int
	// Double lists the requests (0-based, in order) answered by two or more MACs.
	Double []int
	// Replies are the replies to the client's requests, in arrival order.
	Replies []Reply
}

// Reply is one ARP reply or neighbour advertisement in a capture.
type Reply struct {
	At  time.Time // the capture's clock (time of day, no date)
	MAC string
}

// wireFrame is one line of a capture read as a request or an answer about an
// address, whichever the family.
type wireFrame struct {
	request bool
	at      string
	// for a request: the asker's MAC and address; for an answer: the MAC it
	// went to and the MAC that answers.
	mac, asker, to string
	target         string
}

// parseFrame reads one `tcpdump -e` line as an ARP or NDP request or answer.
func parseFrame(ln string) (wireFrame, bool) {
	if m := arpRequest.FindStringSubmatch(ln); m != nil {
		return wireFrame{request: true, at: m[1], mac: m[2], target: m[3], asker: m[4]}, true
	}
	if m := arpAnswer.FindStringSubmatch(ln); m != nil {
		return wireFrame{at: m[1], to: m[2], target: m[3], mac: m[4]}, true
	}
	if m := ndpRequest.FindStringSubmatch(ln); m != nil {
		return wireFrame{request: true, at: m[1], mac: m[2], asker: m[3], target: m[4]}, true
	}
	if m := ndpAnswer.FindStringSubmatch(ln); m != nil {
		return wireFrame{at: m[1], mac: m[2], to: m[3], target: m[4]}, true
	}
	return wireFrame{}, false
}

// AnswersTo reads `tcpdump -e` lines (Capture) for the requests that client
// sent for ip, ARP or NDP by ip's family, and the replies to them; a reply
// belongs to the latest request before it. Announcements are not answers to
// anybody and do not count: a gratuitous ARP request asks nothing, and a
// gratuitous ARP reply or an unsolicited neighbour advertisement goes to
// broadcast or all-nodes, not to the client's MAC (a new owner's announcement
// right after the old owner's last answer is a clean handover, not a double
// answer).
func AnswersTo(lines []string, ip, client netip.Addr) Answers {
	var a Answers
	v, c := ip.String(), client.String()
	var macs map[string]bool
	var clientMAC string
	flush := func() {
		if len(macs) > 1 {
			a.Double = append(a.Double, a.Requests-1)
		}
	}
	for _, ln := range lines {
		f, ok := parseFrame(ln)
		if !ok || f.target != v {
			continue
		}
		if f.request {
			if f.asker == c {
				flush()
				clientMAC = strings.ToLower(f.mac)
				a.Requests++
				macs = map[string]bool{}
			}
			continue
		}
		if strings.ToLower(f.to) != clientMAC {
			continue
		}
		mac := strings.ToLower(f.mac)
		at, _ := time.Parse("15:04:05.000000", f.at)
		a.Replies = append(a.Replies, Reply{At: at, MAC: mac})
		if macs != nil {
			macs[mac] = true
		}
	}
	flush()
	return a
}

// Switch returns, for the first change of answering MAC, the last reply of the
// old MAC and the first of the new, and whether there was one.
func (a Answers) Switch() (last, first Reply, ok bool) {
	for i := 1; i < len(a.Replies); i++ {
		if a.Replies[i].MAC != a.Replies[i-1].MAC {
			return a.Replies[i-1], a.Replies[i], true
		}
	}
	return Reply{}, Reply{}, false
}

// Mentions is the lines of a capture that name ip, for a failure message that
// must show what the wire carried.
func Mentions(lines []string, ip netip.Addr) []string {
	v := ip.String() + " "
	var out []string
	for _, ln := range lines {
		if strings.Contains(ln, v) || strings.Contains(ln, ip.String()+",") {
			out = append(out, ln)
		}
	}
	return out
}
