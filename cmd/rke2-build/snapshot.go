package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap"
	"github.com/rke2os/rke2os/init/rke2node/join"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/internal/durable"
)

const snapshotUsage = `rke2-build etcd-snapshot manages a server's etcd snapshots through its
supervisor (port 9345), with the cluster's server token, as rke2
etcd-snapshot does on the server itself.

Usage:
  rke2-build etcd-snapshot save   --server URL --token T [--ca-file F] [--name NAME] [--compress]
  rke2-build etcd-snapshot ls     --server URL --token T [--ca-file F] [-o json]
  rke2-build etcd-snapshot delete --server URL --token T [--ca-file F] NAME...
  rke2-build etcd-snapshot prune  --server URL --token T [--ca-file F] [--name NAME]
  rke2-build etcd-snapshot fetch  --server URL --token T [--ca-file F] [--output FILE|DIR] NAME

The token is the server token, K10<hash>::server:<secret> (a server's
/var/lib/rancher/rke2/server/token), from --token, --token-file or
$RKE2_TOKEN; a bare secret needs --ca-file, the cluster's server CA.

Use "rke2-build etcd-snapshot <command> --help" for a command's flags.
`

// snapshotTimeout bounds a whole command: the server gives a save or a
// fetch 10 minutes.
const snapshotTimeout = 15 * time.Minute

// maxMessage bounds the server's words read from a refusal.
const maxMessage = 4 << 10

// snapshotCommands are etcd-snapshot's commands, RKE2's names.
var snapshotCommands = map[string]func(ctx context.Context, args []string, stdout io.Writer) error{
	"save":   snapshotSave,
	"ls":     snapshotList,
	"list":   snapshotList,
	"delete": snapshotDelete,
	"prune":  snapshotPrune,
	"fetch":  snapshotFetch,
}

// etcdSnapshot runs one etcd-snapshot command, until it is done, the
// timeout, or an interrupt (which leaves no partial fetch behind).
func etcdSnapshot(args []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usagef("name a command: save, ls, delete, prune or fetch (see rke2-build etcd-snapshot --help)")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, snapshotUsage)
		return errHelp
	}
	cmd, ok := snapshotCommands[args[0]]
	if !ok {
		return usagef("unknown command %q: want save, ls, delete, prune or fetch (see rke2-build etcd-snapshot --help)", args[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	return cmd(ctx, args[1:], stdout)
}

// serverFlags are the flags of every etcd-snapshot command: the server
// and how to trust it.
type serverFlags struct {
	server, token, tokenFile, caFile string
}

func newServerFlags(command string) (*flag.FlagSet, *serverFlags) {
	fl := flag.NewFlagSet("etcd-snapshot "+command, flag.ContinueOnError)
	s := &serverFlags{}
	fl.StringVar(&s.server, "server", "", "a server's supervisor, like https://192.0.2.10:9345")
	fl.StringVar(&s.token, "token", "", "the server token, K10<hash>::server:<secret> (a server's /var/lib/rancher/rke2/server/token); default $RKE2_TOKEN. Other users see a command's flags (ps): prefer --token-file or $RKE2_TOKEN")
	fl.StringVar(&s.tokenFile, "token-file", "", "read the token from `FILE` instead")
	fl.StringVar(&s.caFile, "ca-file", "", "the cluster's server CA, PEM (a server's /var/lib/rancher/rke2/server/tls/server-ca.crt): needed when the token is a bare secret")
	return fl, s
}

// supervisor is a server's supervisor, dialled.
type supervisor struct {
	*join.Supervisor
	url string
}

// dial checks the flags and the server's CA; nothing goes with the token
// before that.
func (s *serverFlags) dial(ctx context.Context) (*supervisor, error) {
	if s.server == "" {
		return nil, usagef("give --server https://ADDR:9345, a server's supervisor")
	}
	token := s.token
	switch {
	case s.token != "" && s.tokenFile != "":
		return nil, usagef("give --token or --token-file, not both")
	case s.tokenFile != "":
		b, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return nil, inputError{fmt.Errorf("--token-file: %w", err)}
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, inputError{fmt.Errorf("--token-file %s is empty: give the file holding the server token (a copy of a server's /var/lib/rancher/rke2/server/token)", s.tokenFile)}
		}
	case token == "":
		token = strings.TrimSpace(os.Getenv("RKE2_TOKEN"))
	}
	if token == "" {
		return nil, usagef("give the server token: --token, --token-file FILE or $RKE2_TOKEN (a server's /var/lib/rancher/rke2/server/token)")
	}
	sv, err := join.DialServer(ctx, s.server, token, s.caFile)
	if err != nil {
		return nil, err
	}
	return &supervisor{sv, s.server}, nil
}

// refused is the error of an answer that is not 2xx: its status and the
// server's words (a few KiB at most, printable only).
func (s *supervisor) refused(what string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: the server %s refused the token (%s): it is not this cluster's server token; give the server token, K10<hash>::server:<secret> from a server's /var/lib/rancher/rke2/server/token", what, s.url, resp.Status)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxMessage))
	msg := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
	return fmt.Errorf("%s: the server %s answers %s: %s", what, s.url, resp.Status, strings.TrimSpace(msg))
}

// op sends one snapshot operation and reads the answer; what is the
// command, for the messages.
func (s *supervisor) op(ctx context.Context, what string, req supervisorapi.SnapshotRequest) (supervisorapi.SnapshotResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return supervisorapi.SnapshotResponse{}, err
	}
	resp, err := s.Do(ctx, http.MethodPost, supervisorapi.SnapshotPath, bytes.NewReader(body))
	if err != nil {
		return supervisorapi.SnapshotResponse{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := s.refused(what, resp); err != nil {
		return supervisorapi.SnapshotResponse{}, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return supervisorapi.SnapshotResponse{}, fmt.Errorf("%s: %w", what, err)
	}
	out, err := supervisorapi.DecodeSnapshotResponse(b)
	if err != nil {
		return supervisorapi.SnapshotResponse{}, fmt.Errorf("%s: the server %s: %w", what, s.url, err)
	}
	return out, nil
}

// plainName refuses what is not a plain file name: a snapshot's name, or
// the prefix of one.
func plainName(what, name string) error {
	switch {
	case strings.HasPrefix(name, "-"):
		return usagef("%s %q looks like a flag: put the flags before the names", what, name)
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return usagef("%s %q is not a plain file name (no \"/\", not \".\" or \"..\"): name a snapshot as rke2-build etcd-snapshot ls lists it", what, name)
	}
	return nil
}

// snapshotSave takes a snapshot now.
func snapshotSave(ctx context.Context, args []string, stdout io.Writer) error {
	fl, sf := newServerFlags("save")
	name := fl.String("name", "", "the snapshot's name, before -<node>-<unix time> (default on-demand)")
	compress := fl.Bool("compress", false, "zip the snapshot (default: the server's etcd-snapshot-compress)")
	if err := parse(fl, args, "rke2-build etcd-snapshot save --server URL --token T [--ca-file F] [--name NAME] [--compress]", false, stdout); err != nil {
		return err
	}
	req := supervisorapi.SnapshotRequest{Operation: supervisorapi.SnapshotSave}
	if *name != "" {
		if err := plainName("--name", *name); err != nil {
			return err
		}
		req.Name = []string{*name}
	}
	fl.Visit(func(f *flag.Flag) {
		if f.Name == "compress" {
			req.Compress = compress
		}
	})
	sv, err := sf.dial(ctx)
	if err != nil {
		return err
	}
	defer sv.Close()
	resp, err := sv.op(ctx, "etcd-snapshot save", req)
	if err != nil {
		return err
	}
	if len(resp.Snapshots) == 0 {
		return fmt.Errorf("etcd-snapshot save: the server %s answered with no snapshot saved", sv.url)
	}
	for _, s := range resp.Snapshots {
		fmt.Fprintf(stdout, "Snapshot %s saved.\n", s.Name)
	}
	return nil
}

// snapshotList lists the server's snapshots, as a table or as the JSON
// the server answers.
func snapshotList(ctx context.Context, args []string, stdout io.Writer) error {
	fl, sf := newServerFlags("ls")
	var format string
	fl.StringVar(&format, "o", "table", "output `FORMAT`: table or json")
	fl.StringVar(&format, "output", "table", "output `FORMAT`: table or json")
	if err := parse(fl, args, "rke2-build etcd-snapshot ls --server URL --token T [--ca-file F] [-o json]", false, stdout); err != nil {
		return err
	}
	if format != "table" && format != "json" {
		return usagef("-o %q: want table or json", format)
	}
	sv, err := sf.dial(ctx)
	if err != nil {
		return err
	}
	defer sv.Close()
	resp, err := sv.op(ctx, "etcd-snapshot ls", supervisorapi.SnapshotRequest{Operation: supervisorapi.SnapshotList})
	if err != nil {
		return err
	}
	if format == "json" {
		b, err := json.MarshalIndent(resp, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	fmt.Fprint(w, "Name\tLocation\tSize\tCreated\n")
	for _, s := range resp.Snapshots {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", s.Name, s.Location, s.Size, s.Created.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

// snapshotDelete deletes the snapshots named.
func snapshotDelete(ctx context.Context, args []string, stdout io.Writer) error {
	fl, sf := newServerFlags("delete")
	if err := parse(fl, args, "rke2-build etcd-snapshot delete --server URL --token T [--ca-file F] NAME...", true, stdout); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		return usagef("name the snapshots to delete (rke2-build etcd-snapshot ls lists them)")
	}
	for _, n := range fl.Args() {
		if err := plainName("snapshot", n); err != nil {
			return err
		}
	}
	sv, err := sf.dial(ctx)
	if err != nil {
		return err
	}
	defer sv.Close()
	resp, err := sv.op(ctx, "etcd-snapshot delete", supervisorapi.SnapshotRequest{Operation: supervisorapi.SnapshotDelete, Name: fl.Args()})
	if err != nil {
		return err
	}
	deleted := map[string]bool{}
	for _, n := range resp.Deleted {
		deleted[n] = true
		fmt.Fprintf(stdout, "Snapshot %s deleted.\n", n)
	}
	var left []string
	for _, n := range fl.Args() {
		if !deleted[n] {
			left = append(left, n)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("etcd-snapshot delete: the server %s did not delete %s, and said no more", sv.url, strings.Join(left, ", "))
	}
	return nil
}

// snapshotPrune deletes the oldest snapshots of a name beyond the
// server's retention.
func snapshotPrune(ctx context.Context, args []string, stdout io.Writer) error {
	fl, sf := newServerFlags("prune")
	name := fl.String("name", "", "prune the snapshots of this name (default: the scheduled snapshots' name)")
	if err := parse(fl, args, "rke2-build etcd-snapshot prune --server URL --token T [--ca-file F] [--name NAME]", false, stdout); err != nil {
		return err
	}
	req := supervisorapi.SnapshotRequest{Operation: supervisorapi.SnapshotPrune}
	if *name != "" {
		if err := plainName("--name", *name); err != nil {
			return err
		}
		req.Name = []string{*name}
	}
	sv, err := sf.dial(ctx)
	if err != nil {
		return err
	}
	defer sv.Close()
	resp, err := sv.op(ctx, "etcd-snapshot prune", req)
	if err != nil {
		return err
	}
	if len(resp.Deleted) == 0 {
		fmt.Fprintln(stdout, "No snapshots pruned.")
	}
	for _, n := range resp.Deleted {
		fmt.Fprintf(stdout, "Snapshot %s deleted.\n", n)
	}
	return nil
}

// snapshotFetch copies one snapshot from the server to this machine: it
// keeps it only whole, as the server hashed it, and (a plain one) a sound
// etcd database; it never replaces a file.
func snapshotFetch(ctx context.Context, args []string, stdout io.Writer) error {
	fl, sf := newServerFlags("fetch")
	output := fl.String("output", "", "`FILE` to write, or a directory to write the snapshot in under its name (default: its name, in the current directory); never replaced")
	if err := parse(fl, args, "rke2-build etcd-snapshot fetch --server URL --token T [--ca-file F] [--output FILE|DIR] NAME", true, stdout); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return usagef("name one snapshot to fetch (rke2-build etcd-snapshot ls lists them)")
	}
	name := fl.Arg(0)
	if err := plainName("snapshot", name); err != nil {
		return err
	}
	out := name
	if *output != "" {
		out = *output
		if fi, err := os.Stat(out); err == nil && fi.IsDir() {
			out = filepath.Join(out, name)
		}
	}
	if _, err := os.Lstat(out); err == nil {
		return inputError{fmt.Errorf("%s exists, and fetch never replaces a file: remove it, or give another --output", out)}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return inputError{err}
	}
	// The temporary file first: a place that cannot be written fails
	// before anything is asked of the server.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if errors.Is(err, fs.ErrNotExist) {
		return inputError{fmt.Errorf("%s: the directory %s does not exist: make it, or give another --output", out, filepath.Dir(out))}
	}
	if err != nil {
		return inputError{fmt.Errorf("%s: %w (give another --output)", out, err)}
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	sv, err := sf.dial(ctx)
	if err != nil {
		return err
	}
	defer sv.Close()
	what := "etcd-snapshot fetch " + name
	resp, err := sv.Do(ctx, http.MethodGet, supervisorapi.SnapshotPath+"/"+url.PathEscape(name), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := sv.refused(what, resp); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if err != nil {
		return fmt.Errorf("%s: the transfer broke off after %d bytes (%w); nothing was kept, fetch it again", what, n, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch sent := resp.Trailer.Get(supervisorapi.SnapshotSHA256Trailer); {
	case sent == "":
		return fmt.Errorf("%s: the server %s sent %d bytes but no sha256 (trailer %s): the transfer was cut short, or the server does not vouch for it; nothing was kept, fetch it again", what, sv.url, n, supervisorapi.SnapshotSHA256Trailer)
	case !strings.EqualFold(sent, sum):
		return fmt.Errorf("%s: the %d bytes received have sha256 %s, but the server sent %s: the snapshot was damaged on the way; nothing was kept, fetch it again", what, n, sum, sent)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// A zip's one entry too: a damaged copy is found now, not at a
	// restore.
	if _, err := etcdsnap.CheckAny(tmp.Name()); err != nil {
		return fmt.Errorf("%s: it arrived as the server sent it, but is not a sound etcd snapshot (%v): the server's copy is damaged; nothing was kept, fetch or take (save) another", what, err)
	}
	if err := place(tmp.Name(), out); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(stdout, "Snapshot %s fetched to %s (%d bytes, sha256 %s).\n", name, out, n, sum)
	return nil
}

// place moves the synced tmp to out, which must not exist, even if it
// came in the meantime: a link fails if it does; where links are not
// supported, a rename after one more look.
func place(tmp, out string) error {
	err := os.Link(tmp, out)
	switch {
	case errors.Is(err, fs.ErrExist):
		return inputError{fmt.Errorf("%s appeared while fetching, and fetch never replaces a file: remove it, or give another --output", out)}
	case err != nil:
		if _, lerr := os.Lstat(out); !errors.Is(lerr, fs.ErrNotExist) {
			return inputError{fmt.Errorf("%s appeared while fetching, and fetch never replaces a file: remove it, or give another --output", out)}
		}
		if err := os.Rename(tmp, out); err != nil {
			return err
		}
	}
	return durable.SyncDir(filepath.Dir(out))
}
