package raftstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// A backup file (`raftvip snapshot save FILE`) is a Raft snapshot of the FSM
// with a header a person can read with `head -2`:
//
//	raftvip-backup v1
//	{"node":"cp1","index":42,"term":3,"servers":[...],"size":1234,"sha256":"..."}
//	<size bytes: the FSM snapshot, exactly what raft stores in snapshots/>
//
// The checksum covers the body, so a truncated or altered file is refused
// before anything is restored from it.

// backupMagic is the first line of every backup file.
const backupMagic = "raftvip-backup v1\n"

// maxBackupHeader bounds the header line, so garbage is refused quickly.
const maxBackupHeader = 1 << 20

// BackupHeader describes a backup: where and when it was taken, the Raft
// position and configuration it reflects, and a summary of the state.
type BackupHeader struct {
	Node    string    `json:"node"`
	TakenAt time.Time `json:"taken_at"`
	Index   uint64    `json:"index"`
	Term    uint64    `json:"term"`
	// Servers is the configuration at Index: a restore uses it to find the
	// restoring node's own address.
	Servers     []Server `json:"servers"`
	Pools       int      `json:"pools"`
	Allocations int      `json:"allocations"`
	Owners      int      `json:"owners"`
	Size        int64    `json:"size"`
	SHA256      string   `json:"sha256"`
}

// WriteBackup takes a Raft snapshot now (or, when nothing changed since the
// last one, uses that) and writes it to w as a backup file. It works on any
// node; the header names the node and the index its state reflects.
func (n *Node) WriteBackup(w io.Writer) (BackupHeader, error) {
	meta, rc, err := n.openSnapshotNow()
	if err != nil {
		return BackupHeader{}, err
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		return BackupHeader{}, fmt.Errorf("read snapshot %s: %w", meta.ID, err)
	}
	h := BackupHeader{Node: n.id, TakenAt: time.Now().UTC(), Index: meta.Index, Term: meta.Term}
	for _, s := range meta.Configuration.Servers {
		h.Servers = append(h.Servers, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)})
	}
	st, err := decodeSnapshot(body)
	if err != nil {
		return BackupHeader{}, fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	h.Pools, h.Allocations, h.Owners = len(st.Pools), len(st.Allocations), len(st.Owners)
	return h, writeBackup(w, h, body)
}

// openSnapshotNow takes a user snapshot and opens it, falling back to the
// newest stored one when raft has nothing new to snapshot.
func (n *Node) openSnapshotNow() (*raft.SnapshotMeta, io.ReadCloser, error) {
	f := n.raft.Snapshot()
	err := f.Error()
	if err == nil {
		meta, rc, err := f.Open()
		if err != nil {
			return nil, nil, fmt.Errorf("open new snapshot: %w", err)
		}
		return meta, rc, nil
	}
	if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, nil, fmt.Errorf("raft snapshot: %w", err)
	}
	metas, err := n.snaps.List()
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil, nil, errors.New("raft snapshot: nothing to snapshot yet")
	}
	meta, rc, err := n.snaps.Open(metas[0].ID)
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot %s: %w", metas[0].ID, err)
	}
	return meta, rc, nil
}

// writeBackup writes the header lines and body, filling in size and checksum.
func writeBackup(w io.Writer, h BackupHeader, body []byte) error {
	sum := sha256.Sum256(body)
	h.Size, h.SHA256 = int64(len(body)), hex.EncodeToString(sum[:])
	hdr, err := json.Marshal(h)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(backupMagic)
	buf.Write(hdr)
	buf.WriteByte('\n')
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write backup header: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	return nil
}

// ReadBackup reads and checks a backup: the magic line, the header, the
// body's size and checksum, and that the body restores into an FSM. It
// returns the header, the body (to hand to raft's snapshot store) and the
// state it holds.
func ReadBackup(r io.Reader) (BackupHeader, []byte, State, error) {
	var h BackupHeader
	br := bufio.NewReader(r)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return h, nil, State{}, fmt.Errorf("not a raftvip backup (want first line %q)", strings.TrimSpace(backupMagic))
	}
	line, err := readLine(br, maxBackupHeader)
	if err != nil {
		return h, nil, State{}, fmt.Errorf("backup header: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, nil, State{}, fmt.Errorf("backup header: %w", err)
	}
	if h.Size < 0 || h.Index == 0 {
		return h, nil, State{}, fmt.Errorf("backup header: size %d, index %d: not a snapshot", h.Size, h.Index)
	}
	body := make([]byte, h.Size)
	if _, err := io.ReadFull(br, body); err != nil {
		return h, nil, State{}, fmt.Errorf("backup truncated: header says %d bytes: %w", h.Size, err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return h, nil, State{}, fmt.Errorf("backup has data after the %d bytes its header announces", h.Size)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != h.SHA256 {
		return h, nil, State{}, errors.New("backup corrupt: the body's sha256 differs from the header's")
	}
	st, err := decodeSnapshot(body)
	if err != nil {
		return h, nil, State{}, fmt.Errorf("backup body: %w", err)
	}
	return h, body, st, nil
}

// readLine reads up to and without the next newline, at most limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var out []byte
	for {
		frag, err := br.ReadSlice('\n')
		out = append(out, frag...)
		if len(out) > limit {
			return nil, fmt.Errorf("longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			return out[:len(out)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, fmt.Errorf("no end of line: %w", err)
		}
	}
}

// decodeSnapshot restores an FSM snapshot body into a scratch FSM, the same
// check raft's restore makes, and returns the state.
func decodeSnapshot(body []byte) (State, error) {
	f := NewFSM()
	if err := f.Restore(io.NopCloser(bytes.NewReader(body))); err != nil {
		return State{}, err
	}
	return f.State(), nil
}
