package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/syncbuf"
)

// TestMain lets the tests run this very binary as testworkload.
func TestMain(m *testing.M) {
	if os.Getenv("TESTWORKLOAD_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestParseServe(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: nil, want: ":8080"},
		{args: []string{"--listen", ":9090"}, want: ":9090"},
		{args: []string{"-listen=127.0.0.1:0"}, want: "127.0.0.1:0"},
		{args: []string{"--listen", ""}, wantErr: "empty"},
		{args: []string{"extra"}, wantErr: "unexpected"},
		{args: []string{"--port", "80"}, wantErr: "not defined"},
	} {
		got, err := parseServe(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseServe(%q) err = %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.listen != tc.want {
			t.Errorf("parseServe(%q) = %+v, %v; want listen %q", tc.args, got, err, tc.want)
		}
	}
}

func TestParseCheck(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    checkConfig
		wantErr string
	}{
		{
			args: []string{"--resolve", "kubernetes.default.svc.cluster.local"},
			want: checkConfig{resolve: []string{"kubernetes.default.svc.cluster.local"}, timeout: 2 * time.Minute, interval: 2 * time.Second},
		},
		{
			args: []string{"--resolve", "a", "--get", "http://a:8080/", "--resolve", "b", "--get", "http://b/healthz", "--timeout", "30s"},
			want: checkConfig{resolve: []string{"a", "b"}, get: []string{"http://a:8080/", "http://b/healthz"}, timeout: 30 * time.Second, interval: 2 * time.Second},
		},
		{
			args: []string{"-get=http://10.43.0.10/"},
			want: checkConfig{get: []string{"http://10.43.0.10/"}, timeout: 2 * time.Minute, interval: 2 * time.Second},
		},
		{args: nil, wantErr: "nothing to check"},
		{args: []string{"--timeout", "1m"}, wantErr: "nothing to check"},
		{args: []string{"--resolve", "a", "--timeout", "0s"}, wantErr: "want more than 0"},
		{args: []string{"--resolve", "a", "--timeout", "soon"}, wantErr: "invalid value"},
		{args: []string{"--resolve", ""}, wantErr: "empty value"},
		{args: []string{"--get", "a:8080/"}, wantErr: "want an http:// URL"},
		{args: []string{"--resolve", "a", "b"}, wantErr: "unexpected"},
	} {
		got, err := parseCheck(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseCheck(%q) err = %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseCheck(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"dance"}, {"serve", "--nope"}, {"check"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and the usage", args, code, errOut.String())
		}
	}
}

func TestCheckSucceeds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from pod-a\nsecond line\n")
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	code := run([]string{"check", "--resolve", "localhost", "--get", srv.URL + "/", "--timeout", "10s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("check = %d\nstdout:\n%s\nstderr:\n%s", code, &out, &errOut)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "resolve localhost: ") || !strings.Contains(lines[0], "127.0.0.1") {
		t.Errorf("stdout:\n%s\nwant the resolved localhost first", &out)
	}
	if want := "get " + srv.URL + "/: 200 hello from pod-a"; len(lines) != 2 || lines[1] != want {
		t.Errorf("stdout:\n%s\nwant %q last", &out, want)
	}
}

// A check that fails at first (a pod started before its Service answers)
// is retried until it succeeds.
func TestCheckRetries(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	var out bytes.Buffer
	cfg := checkConfig{get: []string{srv.URL + "/healthz"}, timeout: 10 * time.Second, interval: 10 * time.Millisecond}
	if !check(context.Background(), cfg, &out) {
		t.Fatalf("check failed:\n%s", &out)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || !strings.Contains(out.String(), "waiting for get "+srv.URL+"/healthz: status 503 not yet") ||
		!strings.HasSuffix(out.String(), "get "+srv.URL+"/healthz: 200 ok\n") {
		t.Errorf("%d calls, stdout:\n%s", calls, &out)
	}
}

func TestCheckFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run([]string{"check", "--resolve", "nonexistent.invalid", "--get", srv.URL + "/", "--resolve", "localhost", "--timeout", "1s"}, &out, &errOut)
	if code != 1 {
		t.Errorf("check = %d, want 1\nstdout:\n%s", code, &out)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("check took %v with --timeout 1s", took)
	}
	for _, want := range []string{"FAIL resolve nonexistent.invalid: ", "FAIL get " + srv.URL + "/: status 404", "resolve localhost: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &out)
		}
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var log syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, "pod-a", &log) }()
	base := "http://" + ln.Addr().String()
	for _, tc := range []struct{ path, want string }{{"/", "hello from pod-a\n"}, {"/healthz", "ok\n"}} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != tc.want {
			t.Errorf("GET %s = %d %q, want 200 %q", tc.path, resp.StatusCode, body, tc.want)
		}
	}
	if resp, err := http.Get(base + "/elsewhere"); err != nil || resp.StatusCode != 404 {
		t.Errorf("GET /elsewhere = %v, %v; want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	// check, against serve.
	var out bytes.Buffer
	if !check(ctx, checkConfig{get: []string{base + "/"}, timeout: 5 * time.Second, interval: time.Second}, &out) ||
		out.String() != "get "+base+"/: 200 hello from pod-a\n" {
		t.Errorf("check against serve:\n%s", &out)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, want := range []string{" GET / 200\n", " GET /healthz 200\n", " GET /elsewhere 404\n"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

// The binary serves on the port it is given and exits 0 on SIGTERM, as the
// kubelet stops a pod.
func TestServeExitsOnSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TESTWORKLOAD_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("no output: %v", sc.Err())
	}
	first := sc.Text()
	_, addr, ok := strings.Cut(first, "listening on ")
	if !ok {
		t.Fatalf("first line %q, want listening on ADDR", first)
	}
	host, _ := os.Hostname()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from "+host+"\n" {
		t.Errorf("GET / = %q, want hello from %s", body, host)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, stdout) // until it exits; Wait closes the pipe
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("testworkload serve ignored SIGTERM")
	}
}
