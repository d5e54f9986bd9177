package daemon

import (
	"errors"
	"io"
	"time"

	"github.com/raftvip/raftvip/daemon/admin"
	"github.com/raftvip/raftvip/raftstore"
)

// adminTimeout bounds forwarding an admin request to the leader.
const adminTimeout = 10 * time.Second

// adminBackend answers the admin socket from the Raft node.
type adminBackend struct{ node *raftstore.Node }

func (b adminBackend) Members() (raftstore.MemberList, error) {
	return b.node.ListMembers(adminTimeout)
}
func (b adminBackend) Remove(name string) error { return b.node.RemoveMember(name, adminTimeout) }
func (b adminBackend) Backup(w io.Writer) (raftstore.BackupHeader, error) {
	return b.node.WriteBackup(w)
}

// startAdmin serves --admin-socket and returns the function that closes it (the
// socket file goes with it). An empty path disables it. A socket another live
// agent answers on (two agents on one host, as in tests) is logged and skipped:
// it says nothing about this agent's health, and the data dir lock already
// keeps two agents off one node's state.
func (d *Daemon) startAdmin() (func(), error) {
	if d.cfg.AdminSocket == "" {
		return func() {}, nil
	}
	ln, err := admin.Listen(d.cfg.AdminSocket)
	if errors.Is(err, admin.ErrInUse) {
		d.log.Error("admin socket not served: raftvip members and snapshot save will not reach this agent", "admin_socket", d.cfg.AdminSocket, "err", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, &FlagError{Flag: "admin-socket", Value: d.cfg.AdminSocket, Err: err}
	}
	srv := &admin.Server{Backend: adminBackend{d.node}, Log: d.log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			d.log.Error("admin socket stopped", "err", err)
		}
	}()
	d.log.Info("admin socket listening", "path", d.cfg.AdminSocket)
	return func() {
		ln.Close()
		<-done
	}, nil
}
