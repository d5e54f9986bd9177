package raftstore

import (
	"errors"
	"testing"
)

func TestAsJoinRefused(t *testing.T) {
	transport := errors.New("127.0.0.1:7950: join refused (leader_name): \"cp1\" is the leader's own name")
	for _, tc := range []struct {
		name         string
		resp         forwardResponse
		err          error
		code, reason string
	}{
		{"no error", forwardResponse{}, nil, "", ""},
		{"a refusal", forwardResponse{Error: "join refused (leader_name): \"cp1\" is the leader's own name"}, transport, "leader_name", "\"cp1\" is the leader's own name"},
		{"a reason with parentheses", forwardResponse{Error: "join refused (nonvoter_limit): the cluster has 2 nonvoters, the limit (--max-nonvoters) is 2"}, transport, "nonvoter_limit", "the cluster has 2 nonvoters, the limit (--max-nonvoters) is 2"},
		{"another error", forwardResponse{Error: "raft add nonvoter: timed out"}, transport, "", ""},
		{"no code", forwardResponse{Error: "join refused (): x"}, transport, "", ""},
		{"transport error without answer", forwardResponse{}, transport, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := asJoinRefused(tc.resp, tc.err)
			var jr *JoinRefusedError
			if !errors.As(got, &jr) {
				if tc.code != "" {
					t.Fatalf("%v: not a JoinRefusedError, want code %q", got, tc.code)
				}
				if got != tc.err {
					t.Fatalf("error changed to %v", got)
				}
				return
			}
			if jr.Code != tc.code || jr.Reason != tc.reason || !errors.Is(got, tc.err) || got.Error() != tc.err.Error() {
				t.Fatalf("got code %q reason %q (%v), want %q %q wrapping %v", jr.Code, jr.Reason, got, tc.code, tc.reason, tc.err)
			}
		})
	}
}

func TestPromotionState(t *testing.T) {
	voter := Server{ID: "cp1", Suffrage: SuffrageVoter}
	cp2 := Server{ID: "cp2", Suffrage: SuffrageNonvoter}
	worker := Server{ID: "w1", Suffrage: SuffrageNonvoter}
	held := &promotionView{candidates: map[string]bool{"cp2": true}, hold: "cp2 is caught up, held: an even count"}
	next := &promotionView{candidates: map[string]bool{"cp2": true, "cp3": true}}
	for _, tc := range []struct {
		name      string
		srv       Server
		promoting bool
		view      *promotionView
		want      string
	}{
		{"a voter", voter, false, held, ""},
		{"a worker", worker, false, held, ""},
		{"no pass yet", cp2, false, nil, ""},
		{"held for an odd count", cp2, false, held, "waiting: cp2 is caught up, held: an even count"},
		{"another is promoted first", cp2, false, next, "waiting: next in line"},
		{"its change commits", cp2, true, held, "promoting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := promotionState(tc.srv, tc.promoting, tc.view); got != tc.want {
				t.Errorf("promotionState = %q, want %q", got, tc.want)
			}
		})
	}
}
