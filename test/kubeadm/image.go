// Package kubeadm runs kubeadm HA clusters on one machine: each node is a
// network namespace plus mount, PID and UTS namespaces with its own containerd
// and a supervised kubelet, and every image is built here from local binaries.
package kubeadm

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Image is one single-binary container image: the binary goes to
// /usr/local/bin/<base name> and is the entrypoint.
type Image struct {
	// Ref is the full reference the image is imported under, e.g.
	// registry.k8s.io/pause:3.10.2.
	Ref string
	// Binary is the host path of the statically linked binary.
	Binary string
}

// blob is one content-addressed file of an OCI layout.
type blob struct {
	digest string
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// WriteImageTar writes img as an OCI image-layout tar, the format
// `ctr images import` reads, so nothing has to be pulled from a registry.
func WriteImageTar(path string, img Image) error {
	bin, err := os.ReadFile(img.Binary)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Ref, err)
	}
	name := filepath.Base(img.Binary)
	layer, err := tarFiles([]tarEntry{
		{name: "usr/", dir: true}, {name: "usr/local/", dir: true}, {name: "usr/local/bin/", dir: true},
		{name: "tmp/", dir: true, mode: 0o1777}, {name: "etc/", dir: true}, {name: "var/", dir: true},
		{name: "usr/local/bin/" + name, mode: 0o755, data: bin},
	})
	if err != nil {
		return fmt.Errorf("image %s: layer: %w", img.Ref, err)
	}
	layerBlob := newBlob(layer)
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/usr/local/bin/" + name},
			"Env":        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerBlob.digest}},
	})
	if err != nil {
		return err
	}
	cfgBlob := newBlob(cfg)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfgBlob.digest, Size: len(cfg)},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layerBlob.digest, Size: len(layer)}},
	})
	if err != nil {
		return err
	}
	manBlob := newBlob(manifest)
	tag := img.Ref[strings.LastIndex(img.Ref, ":")+1:]
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: manBlob.digest, Size: len(manifest),
			Annotations: map[string]string{"io.containerd.image.name": img.Ref, "org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		return err
	}
	entries := []tarEntry{
		{name: "oci-layout", mode: 0o644, data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", mode: 0o644, data: index},
		{name: "blobs/", dir: true}, {name: "blobs/sha256/", dir: true},
	}
	for _, b := range []blob{layerBlob, cfgBlob, manBlob} {
		entries = append(entries, tarEntry{name: "blobs/sha256/" + strings.TrimPrefix(b.digest, "sha256:"), mode: 0o644, data: b.data})
	}
	out, err := tarFiles(entries)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Ref, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// tarEntry is one file or directory of a tar built in memory.
type tarEntry struct {
	name string
	dir  bool
	mode int64
	data []byte
}

func tarFiles(entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
