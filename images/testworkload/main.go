// Command testworkload is the workload of the QEMU tests, shipped in
// rke2os-test-images.linux-amd64.tar.zst (never in RKE2's own archive). It
// proves a cluster's pod network, DNS and Services from inside pods:
//
//	testworkload serve [--listen :8080]
//	testworkload check --resolve NAME... --get URL... [--timeout 2m]
//
// serve answers GET / with "hello from <hostname>" (a pod's hostname is its
// name) and GET /healthz with "ok", logs every request to stdout and exits 0
// on SIGTERM or SIGINT.
//
// check resolves every NAME with Go's own resolver (which reads
// /etc/resolv.conf: the cluster DNS) and GETs every URL, each retried every
// 2 s until it succeeds or the timeout passes (the pod may start before
// CoreDNS answers). It prints "resolve NAME: ADDR[,ADDR]" and "get URL:
// STATUS FIRST-LINE-OF-BODY" for each success, "FAIL ..." for each failure,
// and exits 0 only when every check succeeded.
//
// It is built static, with CGO_ENABLED=0 and -tags netgo, so that it runs
// in an image holding nothing but itself.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage:
  testworkload serve [--listen :8080]
  testworkload check --resolve NAME [--resolve NAME...] --get URL [--get URL...] [--timeout 2m]
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the subcommand args name and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch args[0] {
	case "serve":
		cfg, err := parseServe(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "testworkload serve: %v\n%s", err, usage)
			return 2
		}
		ln, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			fmt.Fprintf(stderr, "testworkload serve: %v\n", err)
			return 1
		}
		host, err := os.Hostname()
		if err != nil {
			fmt.Fprintf(stderr, "testworkload serve: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "testworkload %s: listening on %s\n", host, ln.Addr())
		if err := serve(ctx, ln, host, stdout); err != nil {
			fmt.Fprintf(stderr, "testworkload serve: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "testworkload: shutting down")
		return 0
	case "check":
		cfg, err := parseCheck(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "testworkload check: %v\n%s", err, usage)
			return 2
		}
		if !check(ctx, cfg, stdout) {
			return 1
		}
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "testworkload: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// serveConfig is what `serve` was asked.
type serveConfig struct {
	listen string
}

// checkConfig is what `check` was asked.
type checkConfig struct {
	resolve  []string
	get      []string
	timeout  time.Duration
	interval time.Duration // between two attempts of one check; 2 s
}

// multi is a flag that may be given many times.
type multi []string

func (m *multi) String() string { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*m = append(*m, v)
	return nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints the usage
	return fs
}

func parseServe(args []string) (serveConfig, error) {
	var cfg serveConfig
	fs := newFlagSet("serve")
	fs.StringVar(&cfg.listen, "listen", ":8080", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.listen == "" {
		return cfg, errors.New("--listen is empty")
	}
	return cfg, nil
}

func parseCheck(args []string) (checkConfig, error) {
	cfg := checkConfig{interval: 2 * time.Second}
	fs := newFlagSet("check")
	fs.Var((*multi)(&cfg.resolve), "resolve", "a name to resolve (repeatable)")
	fs.Var((*multi)(&cfg.get), "get", "a URL to GET (repeatable)")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "how long to retry")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(cfg.resolve) == 0 && len(cfg.get) == 0 {
		return cfg, errors.New("nothing to check: give --resolve or --get")
	}
	if cfg.timeout <= 0 {
		return cfg, fmt.Errorf("--timeout %v: want more than 0", cfg.timeout)
	}
	for _, u := range cfg.get {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return cfg, fmt.Errorf("--get %q: want an http:// URL", u)
		}
	}
	return cfg, nil
}

// serve answers on ln until ctx ends, then shuts the server down.
func serve(ctx context.Context, ln net.Listener, host string, out io.Writer) error {
	logger := log.New(out, "", log.LstdFlags|log.LUTC)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			mux.ServeHTTP(rec, r)
			logger.Printf("%s %s %s %d", r.RemoteAddr, r.Method, r.URL.RequestURI(), rec.status)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// statusRecorder remembers the status a handler wrote, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// check runs every check of cfg in turn, each retried until it succeeds or
// cfg.timeout (counted from the start, for all of them) passes; every check
// is tried at least once. It reports whether all succeeded.
func check(ctx context.Context, cfg checkConfig, out io.Writer) bool {
	deadline := time.Now().Add(cfg.timeout)
	// No keep-alives: every attempt resolves the name and connects anew,
	// as a Service is to be proven, not one connection to one endpoint.
	// No proxy: the cluster network is what is under test.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	ok := true
	for _, name := range cfg.resolve {
		ok = retry(ctx, out, "resolve "+name, deadline, cfg.interval, func(ctx context.Context) (string, error) {
			addrs, err := net.DefaultResolver.LookupHost(ctx, name)
			if err != nil {
				return "", err
			}
			return strings.Join(addrs, ","), nil
		}) && ok
	}
	for _, u := range cfg.get {
		ok = retry(ctx, out, "get "+u, deadline, cfg.interval, func(ctx context.Context) (string, error) {
			return get(ctx, client, u)
		}) && ok
	}
	return ok
}

// get GETs u and returns "STATUS FIRST-LINE-OF-BODY"; any status but 200 is
// an error.
func get(ctx context.Context, client *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<10))
	line := ""
	if sc.Scan() {
		line = strings.TrimSpace(sc.Text())
	}
	got := fmt.Sprintf("%d %s", resp.StatusCode, line)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", got)
	}
	return got, nil
}

// retry runs attempt every interval until it succeeds or deadline passes
// (the last attempt is at deadline), printing "WHAT: RESULT" on success and
// "FAIL WHAT: ERROR" when giving up. A changed error is printed as it
// happens, for the pod's log.
func retry(ctx context.Context, out io.Writer, what string, deadline time.Time, interval time.Duration, attempt func(context.Context) (string, error)) bool {
	var last string
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout(deadline))
		res, err := attempt(actx)
		cancel()
		if err == nil {
			fmt.Fprintf(out, "%s: %s\n", what, res)
			return true
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			fmt.Fprintf(out, "FAIL %s: %v (%d attempts)\n", what, err, n)
			return false
		}
		if msg := err.Error(); msg != last {
			fmt.Fprintf(out, "waiting for %s: %v\n", what, err)
			last = msg
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(interval, time.Until(deadline))):
		}
	}
}

// attemptTimeout bounds one attempt: what is left until deadline, but at
// least 1 s (every check gets one real try) and at most 5 s (a lost packet
// must not eat the retries).
func attemptTimeout(deadline time.Time) time.Duration {
	return min(max(time.Until(deadline), time.Second), 5*time.Second)
}
