#!/usr/bin/env bash
# Builds the Kubernetes binaries every test harness runs, once, from the Go
# module in ./kubeadm: etcd, kube-apiserver and kube-controller-manager (the
# test control plane of test/cluster) and kube-scheduler, kubeadm and kubelet
# (the kubeadm nodes of test/kubeadm). All are built with CGO_ENABLED=0, so
# each also runs alone in a one-layer image; one set serves both harnesses, so
# a cold CI run builds Kubernetes once. The cache directory is keyed on the
# Kubernetes version and a hash of go.mod, go.sum and the mains. Later runs find
# the stamp and return at once. Progress goes to stderr; the last line on stdout
# is RAFTVIP_K8S_BIN_DIR=<dir>, which test/cluster and test/kubeadm read.
#
#   RAFTVIP_K8S_BIN_DIR  cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/raftvip/k8s-v1.37.2-static)
set -euo pipefail

K8S_VERSION=v1.37.2
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubeadm kubelet)
export CGO_ENABLED=0
if [[ $# -gt 0 ]]; then
	echo "build.sh: takes no arguments (one binary set serves every harness)" >&2
	exit 2
fi

# This module builds on its own, whatever workspace the caller is in.
export GOWORK=off

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/kubeadm"
bin_dir="${RAFTVIP_K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/raftvip/k8s-${K8S_VERSION}-static}"
mkdir -p "$bin_dir"

mains=()
for b in "${BINARIES[@]}"; do
	mains+=("cmd/$b/main.go")
done
key="$K8S_VERSION $(cat go.mod go.sum "${mains[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$bin_dir/.stamp"

log() { printf '[k8s-bins %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

fresh() {
	[[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]] || return 1
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x "$bin_dir/$b" ]] || return 1
	done
}

# One builder at a time; a second caller waits, then finds the stamp.
exec 9>"$bin_dir/.lock"
flock 9

if fresh; then
	log "cached in $bin_dir"
	echo "RAFTVIP_K8S_BIN_DIR=$bin_dir"
	exit 0
fi

log "building Kubernetes $K8S_VERSION binaries into $bin_dir (cold: about 19 minutes on 2 cores)"
rm -f "$stamp"
ldflags="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"${K8S_VERSION#v}")"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

total_start=$SECONDS
for b in "${BINARIES[@]}"; do
	start=$SECONDS
	log "go build $b ..."
	go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$bin_dir/$b.tmp" "./cmd/$b"
	mv -f "$bin_dir/$b.tmp" "$bin_dir/$b"
	log "built $b in $((SECONDS - start))s"
done
echo "$key" >"$stamp"
log "all built in $((SECONDS - total_start))s"
echo "RAFTVIP_K8S_BIN_DIR=$bin_dir"
