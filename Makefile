# raftvip — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin/raftvip
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell go env GOPATH)/bin/staticcheck
# Packages the netns lab and the kubeadm nodes need (containerd 1.6 and runc from
# Debian); installed with apt-get when a command is missing.
APT_PKGS := iproute2 iputils-ping arping tcpdump containerd runc
# FUZZTIME is an execution count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report a bare "context deadline exceeded" failure at the deadline on
# a loaded machine (golang/go#75804, fixed in 1.27). 40000 runs take about 10 s here.
FUZZTIME ?= 40000x

.PHONY: all build test unit lint bench demo deps k8s-bins clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# deps installs the lab's system packages when any is missing (needs root).
deps:
	@missing=""; for c in ip ping arping tcpdump containerd ctr runc; do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		echo ">> installing $(APT_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	fi

# k8s-bins builds, once per version, the one static (CGO_ENABLED=0) Kubernetes set
# every harness runs: etcd, kube-apiserver, kube-controller-manager for the test
# control plane, plus kube-scheduler, kubeadm and kubelet for the kubeadm nodes
# (about 19 minutes cold on 2 cores); later runs reuse the cache.
k8s-bins:
	bash test/k8s/build.sh

test: deps build k8s-bins
	$(GO) vet ./...
	RAFTVIP_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 45m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./raftstore/

unit:
	$(GO) test -count=1 -short ./daemon/... ./raftstore/... ./staticpod/... ./workercert/... .

lint:
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd test/k8s/kubeadm && GOWORK=off $(GO) vet ./...

# bench prints numbers, never pass/fail on time. In-process benchmarks run for Go's
# default time; lab and control-plane benchmarks measure their own trials once.
bench: deps build k8s-bins
	$(GO) test -run '^$$' -bench . -timeout 20m ./raftstore/ ./daemon/... ./vip/
	RAFTVIP_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m . ./vip/bgp/ ./test/...

demo: deps build
	RAFTVIP_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/demo

clean:
	rm -rf bin
