// Command kubeadm is the upstream kubeadm, built from the k8s.io/kubernetes
// module so the harness runs the same init and join a user runs.
package main

import (
	"k8s.io/kubernetes/cmd/kubeadm/app"
	utilerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
)

func main() {
	utilerrors.HandleError(app.Run())
}
