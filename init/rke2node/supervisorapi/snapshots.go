package supervisorapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SnapshotPath is the supervisor's etcd snapshot endpoint, k3s's and
// RKE2's: POST a SnapshotRequest to save, list, delete or prune this
// server's snapshots; GET SnapshotPath/<file name> streams one, with its
// sha256 in the trailer SnapshotSHA256Trailer. The server token only.
const SnapshotPath = "/db/snapshot"

// SnapshotSHA256Trailer is the trailer of a fetched snapshot: the hex
// sha256 of the bytes sent.
const SnapshotSHA256Trailer = "Rke2os-Sha256"

// The operations of a SnapshotRequest, k3s's words.
const (
	SnapshotSave   = "save"
	SnapshotList   = "list"
	SnapshotDelete = "delete"
	SnapshotPrune  = "prune"
)

// SnapshotRequest is a snapshot operation, in the JSON k3s's CLI sends
// (operation, name, compress). k3s's dir, retention and s3 overrides are
// refused: the server's own settings say where snapshots go.
type SnapshotRequest struct {
	Operation string `json:"operation"`
	// Name is the name of a snapshot to save (its prefix; "on-demand" if
	// none), the prefix whose older snapshots prune deletes (the
	// scheduled snapshots' name if none), or the file names to delete.
	Name     []string `json:"name,omitempty"`
	Compress *bool    `json:"compress,omitempty"`
}

// SnapshotInfo is one snapshot file of a server.
type SnapshotInfo struct {
	Name       string    `json:"name"`
	Node       string    `json:"node"`
	Location   string    `json:"location"`
	Size       int64     `json:"size"`
	Created    time.Time `json:"created"`
	Compressed bool      `json:"compressed,omitempty"`
}

// SnapshotResponse answers a SnapshotRequest: the snapshots listed or
// saved, the file names deleted.
type SnapshotResponse struct {
	Snapshots []SnapshotInfo `json:"snapshots"`
	Deleted   []string       `json:"deleted,omitempty"`
}

// Snapshots are this server's etcd snapshots (the rke2node service).
type Snapshots interface {
	Save(ctx context.Context, name string, compress *bool) (SnapshotInfo, error)
	List(ctx context.Context) ([]SnapshotInfo, error)
	Delete(ctx context.Context, names []string) ([]string, error)
	Prune(ctx context.Context, name string) ([]string, error)
	// Open opens one snapshot file by name for reading.
	Open(name string) (*os.File, error)
}

// ErrNoSnapshot is a snapshot name that names none of this server's.
var ErrNoSnapshot = errors.New("no such snapshot on this server")

// SetSnapshots hands the supervisor the server's snapshots; until then
// SnapshotPath answers 503.
func (s *Server) SetSnapshots(sn Snapshots) { s.snapshots.Store(&sn) }

// snapshotTimeout bounds a save or a fetch: etcd's database streamed to
// the disk or the caller, slower than the supervisor's usual answers.
const snapshotTimeout = 10 * time.Minute

func (s *Server) snapshotsOrFail(w http.ResponseWriter, r *http.Request) Snapshots {
	p := s.snapshots.Load()
	if p == nil || *p == nil {
		fail(w, r, http.StatusServiceUnavailable, errors.New("etcd snapshots are not ready on this server yet (its apiserver and etcd are starting)"))
		return nil
	}
	return *p
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	sn := s.snapshotsOrFail(w, r)
	if sn == nil {
		return
	}
	var req SnapshotRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, r, http.StatusBadRequest, fmt.Errorf("snapshot request: %w (send {\"operation\": \"save|list|delete|prune\", \"name\": [...]}; dir, retention and s3 are the server's own settings)", err))
		return
	}
	first := ""
	if len(req.Name) > 0 {
		first = req.Name[0]
	}
	for _, n := range req.Name {
		if n == "" || len(n) > 255 || n != filepath.Base(n) || strings.HasPrefix(n, ".") || strings.ContainsAny(n, "\\\x00") {
			fail(w, r, http.StatusBadRequest, fmt.Errorf("snapshot name %q: a plain name, no \"/\" and no leading dot", n))
			return
		}
	}
	var resp SnapshotResponse
	var err error
	switch req.Operation {
	case SnapshotSave:
		if len(req.Name) > 1 {
			fail(w, r, http.StatusBadRequest, errors.New("snapshot save: one name at most"))
			return
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(snapshotTimeout))
		var info SnapshotInfo
		if info, err = sn.Save(r.Context(), first, req.Compress); err == nil {
			resp.Snapshots = []SnapshotInfo{info}
		}
	case SnapshotList:
		resp.Snapshots, err = sn.List(r.Context())
	case SnapshotDelete:
		if len(req.Name) == 0 {
			fail(w, r, http.StatusBadRequest, errors.New("snapshot delete: name the snapshots to delete"))
			return
		}
		resp.Deleted, err = sn.Delete(r.Context(), req.Name)
	case SnapshotPrune:
		if len(req.Name) > 1 {
			fail(w, r, http.StatusBadRequest, errors.New("snapshot prune: one name at most"))
			return
		}
		resp.Deleted, err = sn.Prune(r.Context(), first)
	default:
		fail(w, r, http.StatusBadRequest, fmt.Errorf("snapshot operation %q: want save, list, delete or prune", req.Operation))
		return
	}
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNoSnapshot) {
			code = http.StatusNotFound
		}
		// What was done before the error (snapshots deleted) is said too.
		if len(resp.Deleted) > 0 {
			err = fmt.Errorf("%w (deleted before the error: %v)", err, resp.Deleted)
		}
		fail(w, r, code, err)
		return
	}
	if resp.Snapshots == nil {
		resp.Snapshots = []SnapshotInfo{}
	}
	slog.Info("supervisor: etcd snapshot", "operation", req.Operation, "name", req.Name, "remote", r.RemoteAddr)
	writeJSON(w, resp)
}

// fetchSnapshot streams one snapshot file, its sha256 in a trailer.
func (s *Server) fetchSnapshot(w http.ResponseWriter, r *http.Request) {
	sn := s.snapshotsOrFail(w, r)
	if sn == nil {
		return
	}
	if r.Method != http.MethodGet {
		fail(w, r, http.StatusMethodNotAllowed, errors.New("GET a snapshot"))
		return
	}
	name := r.PathValue("name")
	f, err := sn.Open(name)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNoSnapshot) {
			code = http.StatusNotFound
		}
		fail(w, r, code, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fail(w, r, http.StatusInternalServerError, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(snapshotTimeout))
	w.Header().Set("Trailer", SnapshotSHA256Trailer)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), f)
	if err != nil || n != fi.Size() {
		// The connection is broken, not ended: no client takes the
		// bytes sent for the whole snapshot.
		slog.Warn("supervisor: etcd snapshot fetch cut short", "name", name, "sent", n, "size", fi.Size(), "err", err, "remote", r.RemoteAddr)
		panic(http.ErrAbortHandler)
	}
	w.Header().Set(SnapshotSHA256Trailer, hex.EncodeToString(h.Sum(nil)))
	slog.Info("supervisor: etcd snapshot fetched", "name", name, "bytes", n, "remote", r.RemoteAddr)
}

// DecodeSnapshotResponse reads a SnapshotResponse, for the CLI.
func DecodeSnapshotResponse(b []byte) (SnapshotResponse, error) {
	var resp SnapshotResponse
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&resp); err != nil {
		return SnapshotResponse{}, fmt.Errorf("snapshot answer: %w", err)
	}
	return resp, nil
}
