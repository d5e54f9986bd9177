package l2_test

import (
	"github.com/raftvip/raftvip/test/lab"
)

// nsOf maps a lab node namespace back to its node name.
func nsOf(l *lab.Lab, ns string) string {
	if i := l.NodeIndex(ns); i >= 0 {
		return nodeName(i)
	}
	return ns
}
