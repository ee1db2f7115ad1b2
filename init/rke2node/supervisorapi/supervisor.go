// Package supervisorapi is the server's side of joining, RKE2's supervisor on
// port 9345: it hands a joining node the cluster's CA, signs the
// certificate requests of its kubelet and kube-proxy, tells it where the
// apiservers are and, to a further server, gives the cluster's bootstrap
// data. /cacerts and /ping answer anyone; everything else wants a token
// as basic auth: the agents' endpoints "node:<agent secret>", and all of
// them "server:<server secret>". As in RKE2, "node:<server secret>" (an
// agent given the server token as a bare secret) is an agent's too.
package supervisorapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/pki"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Port is the supervisor's port, RKE2's.
const Port = 9345

// The headers a joining node names itself with, as RKE2's agents send
// them.
const (
	HeaderNodeName     = "rke2-Node-Name"
	HeaderNodePassword = "rke2-Node-Password"
	// HeaderNodeIP is the node's addresses, comma-separated: the SANs of
	// its kubelet's serving certificate.
	HeaderNodeIP = "rke2-Node-IP"
)

// Prefix is the path of RKE2's versioned endpoints.
const Prefix = "/v1-rke2"

// Limits on what a caller may send.
const (
	maxBody   = 64 << 10
	maxHeader = 16 << 10
)

// AgentConfig is what /v1-rke2/config answers: the cluster's settings a
// joining node needs for its kubelet and kube-proxy.
type AgentConfig struct {
	ClusterCIDR   string `json:"cluster-cidr"`
	ServiceCIDR   string `json:"service-cidr"`
	ClusterDNS    string `json:"cluster-dns"`
	ClusterDomain string `json:"cluster-domain"`
}

// BootstrapFile is one file of /v1-rke2/server-bootstrap.
type BootstrapFile struct {
	Timestamp time.Time `json:"timestamp"`
	Content   []byte    `json:"content"`
}

// Cluster is what the supervisor asks the running cluster; it is set once
// the apiserver answers (SetCluster), and until then the endpoints that
// need it answer 503.
type Cluster struct {
	// Passwords checks a node's password for its name.
	Passwords Passwords
	// APIServers are the apiservers' addresses, "host:port".
	APIServers func(context.Context) ([]string, error)
	// Members is etcd's member list, as etcd answers it (for /db/info).
	Members func(context.Context) (json.RawMessage, error)
	// Nodes are the cluster's Nodes: whose addresses a kubelet's serving
	// certificate may name.
	Nodes func(context.Context) ([]corev1.Node, error)
}

// Passwords keeps the node passwords.
type Passwords interface {
	// Check accepts password for the node name: nil if the name is
	// claimed with it, ErrPasswordRejected if with another, ErrUnclaimed
	// if with none yet.
	Check(ctx context.Context, name, password string) error
	// Claim records password for a name no one has claimed; it is
	// ErrNameRegistered if a Node has that name already. If another
	// request claims the name first, it answers as Check.
	Claim(ctx context.Context, name, password string) error
}

// ErrPasswordRejected is a node name claimed with another password.
var ErrPasswordRejected = errors.New("node password rejected: the name is taken by a node with another password (delete that Node, or give this node another name)")

// ErrUnclaimed is a node name no one has claimed yet.
var ErrUnclaimed = errors.New("the node name is not claimed yet")

// ErrNameRegistered is a claim for the name of a Node that exists but
// whose name was never claimed with a password: a server's (servers issue
// their own kubelet certificates) or a node's whose password secret was
// deleted. It is not given to whoever asks first.
var ErrNameRegistered = errors.New("a Node of that name is registered without a node password (a server's, or a node whose password secret was deleted), and its name is given to no one who asks: give this node another name, or delete that Node if it is gone")

// Server is the supervisor of one server node.
type Server struct {
	Paths  layout.Paths
	Config AgentConfig
	// Ready answers whether this server's apiserver is ready (readyz).
	Ready func(context.Context) error

	serverSecret, nodeSecret string
	kubeletCA, clientCA      *pki.CA
	// apiNames are the names and addresses of this server's apiserver
	// certificate, which no kubelet's may carry.
	apiNames apiNames
	// claims limits the claims of new names per source.
	claims  *claimLimiter
	cluster atomic.Pointer[Cluster]
	// snapshots are the server's etcd snapshots, once they are ready.
	snapshots atomic.Pointer[Snapshots]
}

// New is the supervisor of the server whose PKI is under p: it reads the
// cluster's secrets and CAs once.
func New(p layout.Paths, cfg AgentConfig, ready func(context.Context) error) (*Server, error) {
	s := &Server{Paths: p, Config: cfg, Ready: ready, claims: newClaimLimiter()}
	var err error
	if s.serverSecret, s.nodeSecret, err = serverpki.ClusterSecrets(p); err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	if s.kubeletCA, err = pki.LoadCA(p.Server("tls", "kubelet-serving-ca.crt"), p.Server("tls", "kubelet-serving-ca.key")); err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	if s.clientCA, err = pki.LoadCA(p.Server("tls", "client-ca.crt"), p.Server("tls", "client-ca.key")); err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	api, err := pki.ReadCert(p.Server("tls", "serving-kube-apiserver.crt"))
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	s.apiNames = apiNames{dns: api.DNSNames, ips: api.IPAddresses}
	return s, nil
}

// SetCluster makes the endpoints that ask the cluster answer.
func (s *Server) SetCluster(c *Cluster) { s.cluster.Store(c) }

// role is what a caller's credentials allow.
type role int

const (
	roleNone role = iota
	roleNode
	roleServer
)

// Handler serves the supervisor's endpoints.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	node := func(h http.HandlerFunc) http.Handler { return s.require(roleNode, h) }
	server := func(h http.HandlerFunc) http.Handler { return s.require(roleServer, h) }
	authed.Handle("POST "+Prefix+"/serving-kubelet.crt", node(s.servingKubelet))
	authed.Handle("POST "+Prefix+"/client-kubelet.crt", node(s.clientKubelet))
	authed.Handle("POST "+Prefix+"/client-kube-proxy.crt", node(s.clientKubeProxy))
	authed.Handle("GET "+Prefix+"/client-ca.crt", node(s.file(s.Paths.Server("tls", "client-ca.crt"))))
	authed.Handle("GET "+Prefix+"/server-ca.crt", node(s.file(s.Paths.Server("tls", "server-ca.crt"))))
	authed.Handle("GET "+Prefix+"/config", node(s.config))
	authed.Handle("GET "+Prefix+"/readyz", node(s.readyz))
	authed.Handle("GET "+Prefix+"/apiservers", node(s.apiservers))
	authed.Handle("GET "+Prefix+"/server-bootstrap", server(s.bootstrap))
	authed.Handle("GET /db/info", server(s.dbInfo))
	authed.Handle("POST "+SnapshotPath, server(s.snapshot))
	authed.Handle("GET "+SnapshotPath+"/{name}", server(s.fetchSnapshot))

	open := http.NewServeMux()
	open.HandleFunc("GET /cacerts", s.file(s.Paths.Server("tls", "server-ca.crt")))
	open.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong") })
	open.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Anything but the two open endpoints wants the token first, so
		// that a caller without it learns nothing, not even which paths
		// exist.
		if s.roleOf(r) == roleNone {
			s.refuse(w, r, http.StatusUnauthorized, "no valid token")
			return
		}
		authed.ServeHTTP(w, r)
	})
	return http.MaxBytesHandler(open, maxBody)
}

// roleOf checks the request's basic auth against the cluster's secrets.
func (s *Server) roleOf(r *http.Request) role {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return roleNone
	}
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch {
	case user == "server" && eq(pass, s.serverSecret):
		return roleServer
	case user == "node" && (eq(pass, s.nodeSecret) || eq(pass, s.serverSecret)):
		return roleNode
	}
	return roleNone
}

// require serves h to callers whose token gives them at least want.
func (s *Server) require(want role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.roleOf(r) < want {
			s.refuse(w, r, http.StatusUnauthorized, "the token is not a server's")
			return
		}
		h(w, r)
	})
}

// refuse answers code with its status text only, and logs the refusal
// with the caller's address.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	slog.Warn("supervisor: refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", code, "reason", why)
	console.Event(console.EventSupervisorRefused, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", code, "reason", why)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="rke2"`)
	}
	http.Error(w, http.StatusText(code), code)
}

// fail answers a request the supervisor cannot serve now, or one that is
// malformed, with the reason in plain words (the caller has the token).
func fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	slog.Warn("supervisor: request failed", "remote", r.RemoteAddr, "path", r.URL.Path, "status", code, "err", err)
	http.Error(w, err.Error(), code)
}

func (s *Server) file(p string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(p)
		if err != nil {
			fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(b)
	}
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Config) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready == nil {
		fail(w, r, http.StatusServiceUnavailable, errors.New("the apiserver is not ready"))
		return
	}
	if err := s.Ready(r.Context()); err != nil {
		fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("the apiserver is not ready: %w", err))
		return
	}
	io.WriteString(w, "ok")
}

func (s *Server) apiservers(w http.ResponseWriter, r *http.Request) {
	c := s.cluster.Load()
	if c == nil || c.APIServers == nil {
		fail(w, r, http.StatusServiceUnavailable, errors.New("the apiserver is not ready"))
		return
	}
	addrs, err := c.APIServers(r.Context())
	if err != nil {
		fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, addrs)
}

func (s *Server) dbInfo(w http.ResponseWriter, r *http.Request) {
	c := s.cluster.Load()
	if c == nil || c.Members == nil {
		fail(w, r, http.StatusServiceUnavailable, errors.New("etcd is not ready"))
		return
	}
	m, err := c.Members(r.Context())
	if err != nil {
		fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(m)
}

// bootstrap is the cluster's shared files a further server needs,
// keyed by their path below server/.
func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	out := map[string]BootstrapFile{}
	for _, rel := range serverpki.BootstrapFiles() {
		p := s.Paths.Server(filepath.FromSlash(rel))
		fi, err := os.Stat(p)
		if err != nil {
			fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		b, err := os.ReadFile(p)
		if err != nil {
			fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		out[rel] = BootstrapFile{Timestamp: fi.ModTime().UTC(), Content: b}
	}
	slog.Info("supervisor: server bootstrap data sent", "remote", r.RemoteAddr)
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Serve serves the supervisor on addr over TLS with the certificate and
// key given, until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// nodeName is the caller's node name header, checked as Kubernetes checks
// a Node's name.
func nodeName(r *http.Request) (string, error) {
	name := r.Header.Get(HeaderNodeName)
	if name == "" {
		return "", fmt.Errorf("no %s header", HeaderNodeName)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("%s %q: %s", HeaderNodeName, name, strings.Join(errs, "; "))
	}
	return name, nil
}
