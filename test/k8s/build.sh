#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager from the Go modules
# pinned in this directory's go.mod, once, into a cache directory keyed on the
# Kubernetes version and a hash of go.mod, go.sum and the mains. Later runs find
# the stamp and return at once. Progress goes to stderr; the last line on stdout
# is RAFTVIP_K8S_BIN_DIR=<dir>, which test/cluster reads.
#
# `build.sh kubeadm` builds the node set instead: kubelet, kubeadm and every
# control-plane component, from the module in ./kubeadm, with CGO_ENABLED=0 so
# each binary runs alone in a one-layer image. Its last line is
# RAFTVIP_KUBEADM_BIN_DIR=<dir>, which test/kubeadm reads.
#
#   RAFTVIP_K8S_BIN_DIR      cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/raftvip/k8s-v1.37.2)
#   RAFTVIP_KUBEADM_BIN_DIR  cache directory of the node set (default .../raftvip/k8s-v1.37.2-static)
set -euo pipefail

K8S_VERSION=v1.37.2
set_name="${1:-}"
case "$set_name" in
"")
	BINARIES=(etcd kube-apiserver kube-controller-manager)
	out_var=RAFTVIP_K8S_BIN_DIR
	;;
kubeadm)
	BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubeadm kubelet)
	out_var=RAFTVIP_KUBEADM_BIN_DIR
	export CGO_ENABLED=0
	;;
*)
	echo "build.sh: unknown binary set \"$set_name\" (want none or kubeadm)" >&2
	exit 2
	;;
esac

# This module builds on its own, whatever workspace the caller is in.
export GOWORK=off

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/raftvip"
if [[ -n "$set_name" ]]; then
	cd "$set_name"
	bin_dir="${RAFTVIP_KUBEADM_BIN_DIR:-$cache/k8s-${K8S_VERSION}-static}"
else
	bin_dir="${RAFTVIP_K8S_BIN_DIR:-$cache/k8s-${K8S_VERSION}}"
fi
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
	echo "$out_var=$bin_dir"
	exit 0
fi

log "building Kubernetes $K8S_VERSION binaries into $bin_dir (cold: about 10 minutes on 2 cores)"
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
echo "$out_var=$bin_dir"
