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
)

// Answers is what a capture shows about the client's ARP requests for one
// address: how many it sent, which were answered by more than one MAC, and each
// reply's time and MAC in order.
type Answers struct {
	Requests int
	// Double lists the requests (0-based, in order) answered by two or more MACs.
	Double []int
	// Replies are the replies to the client's requests, in arrival order.
	Replies []Reply
}

// Reply is one ARP reply in a capture.
type Reply struct {
	At  time.Time // the capture's clock (time of day, no date)
	MAC string
}

// ARPAnswers reads `tcpdump -e` lines (Capture) for the requests that client
// sent for ip and the replies to them; a reply belongs to the latest request
// before it. Gratuitous ARPs are not answers to anybody and do not count: a
// gratuitous request asks nothing, and a gratuitous reply goes to broadcast, not
// to the client's MAC (a new owner's gratuitous reply right after the old
// owner's last answer is a clean handover, not a double answer).
func ARPAnswers(lines []string, ip, client netip.Addr) Answers {
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
		if m := arpRequest.FindStringSubmatch(ln); m != nil && m[3] == v && m[4] == c {
			flush()
			clientMAC = strings.ToLower(m[2])
			a.Requests++
			macs = map[string]bool{}
			continue
		}
		m := arpAnswer.FindStringSubmatch(ln)
		if m == nil || m[3] != v || strings.ToLower(m[2]) != clientMAC {
			continue
		}
		mac := strings.ToLower(m[4])
		at, _ := time.Parse("15:04:05.000000", m[1])
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
