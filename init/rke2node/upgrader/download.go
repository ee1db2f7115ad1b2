package upgrader

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/goroutine"
	"github.com/rke2os/rke2os/internal/artifact"
	"golang.org/x/sys/unix"
)

// downloadPrefix names the downloads in Files.Dir; the ones a restart
// finds were cut short, and go.
const downloadPrefix = "download-"

// maxArtifactSize bounds a download: the largest slot image an artifact
// holds, its manifest, its signature and the tar headers.
const maxArtifactSize = artifact.MaxSlotSize + artifact.MaxManifestSize + 1<<20

// download GETs req's URL into a new file in Dir, synced, and checks its
// sha256; it returns the file's path. A failed download leaves no file.
func (u *upgrader) download(ctx context.Context, req upgradeapi.Request) (path string, err error) {
	where := redact(req.URL)
	if err := os.MkdirAll(u.Dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(u.Dir, downloadPrefix+"*.upgrade")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, u.DownloadTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %v", where, unwrapURL(err))
	}
	resp, err := u.httpClient().Do(hreq)
	if err != nil {
		return "", fmt.Errorf("GET %s: %v", where, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", where, resp.Status)
	}
	// The size first: the download goes to the state partition, beside
	// etcd, and one without a length could fill it before any check.
	if resp.ContentLength < 0 {
		return "", fmt.Errorf("GET %s: the server gives no Content-Length; an artifact is taken only with its size known (serve it as a plain file)", where)
	}
	if resp.ContentLength > maxArtifactSize {
		return "", fmt.Errorf("GET %s: %d bytes, more than any upgrade artifact (%d)", where, resp.ContentLength, int64(maxArtifactSize))
	}
	if free, err := freeBytes(u.Dir); err == nil && resp.ContentLength > free {
		return "", fmt.Errorf("GET %s: the artifact is %d MiB, the state partition has %d MiB free (%s)", where, resp.ContentLength>>20, free>>20, u.Dir)
	}

	// The progress line, and the stall watch: a server that stops
	// sending fails the download after StallTimeout.
	var got atomic.Int64
	var stalled atomic.Bool
	done := make(chan struct{})
	defer close(done)
	goroutine.Go("upgrade download progress", func() {
		tick := min(u.Progress, u.StallTimeout/2)
		t := time.NewTicker(max(tick, time.Millisecond))
		defer t.Stop()
		seen, moved, said := int64(0), time.Now(), time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			n := got.Load()
			if n != seen {
				seen, moved = n, time.Now()
			} else if time.Since(moved) >= u.StallTimeout {
				stalled.Store(true)
				cancel()
				return
			}
			if time.Since(said) >= u.Progress {
				said = time.Now()
				slog.Info("upgrade: downloading", "mib", n>>20, "of_mib", resp.ContentLength>>20)
			}
		}
	})

	h := sha256.New()
	body := readerFunc(func(p []byte) (int, error) {
		n, err := resp.Body.Read(p)
		got.Add(int64(n))
		return n, err
	})
	n, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(body, maxArtifactSize+1), make([]byte, 1<<20))
	switch {
	case stalled.Load():
		return "", fmt.Errorf("GET %s: nothing came for %s, after %d bytes", where, u.StallTimeout, n)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", fmt.Errorf("GET %s: not done in %s, after %d bytes", where, u.DownloadTimeout, n)
	case err != nil:
		return "", fmt.Errorf("GET %s: after %d bytes: %v", where, n, unwrapURL(err))
	case n > maxArtifactSize:
		return "", fmt.Errorf("GET %s: more than any upgrade artifact (%d bytes)", where, int64(maxArtifactSize))
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if !sameSHA256(sum, req.SHA256) {
		return "", fmt.Errorf("the artifact from %s has sha256 %s, want %s (the plan's): not the file the plan names, or damaged on its way", where, sum, req.SHA256)
	}
	slog.Info("upgrade: downloaded", "bytes", n, "sha256", sum)
	return f.Name(), nil
}

// httpClient is Config.HTTP, or a client that trusts the system's roots
// and the CAFiles that exist; the download's context bounds its time.
func (u *upgrader) httpClient() *http.Client {
	if u.HTTP != nil {
		return u.HTTP
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	var pool *x509.CertPool
	for _, p := range u.CAFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if pool == nil {
			if pool, err = x509.SystemCertPool(); err != nil {
				pool = x509.NewCertPool()
			}
		}
		pool.AppendCertsFromPEM(b)
	}
	if pool != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t}
}

// unwrapURL drops the URL that net/http's errors carry: it may hold
// credentials, and the message says where already.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// freeBytes is what an unprivileged writer may still put on dir's
// filesystem.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
