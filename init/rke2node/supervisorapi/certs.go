package supervisorapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/shared/pki"
)

// The certificate endpoints sign the caller's request (its private key
// never leaves it) for names the supervisor decides: the request's own
// subject is ignored. The kubelet's certificates are for the node named
// in the headers, which must prove its name with its password first; its
// serving certificate is the kubelet serving CA's, with only the names and
// addresses the node may claim (kubeletSANs).

func (s *Server) servingKubelet(w http.ResponseWriter, r *http.Request) {
	var requested []net.IP
	if v := r.Header.Get(HeaderNodeIP); v != "" {
		for _, f := range strings.Split(v, ",") {
			ip := net.ParseIP(strings.TrimSpace(f))
			if ip == nil {
				fail(w, r, http.StatusBadRequest, fmt.Errorf("%s: %q is not an IP address", HeaderNodeIP, f))
				return
			}
			requested = append(requested, ip)
		}
	}
	// What the apiserver's own names forbid is refused before the name is
	// claimed: a refused request records nothing.
	if name, err := nodeName(r); err == nil {
		req := kubeletRequest{name: name, requested: requested}
		if _, _, err := kubeletSANs(req, nil, s.apiNames); err != nil {
			fail(w, r, http.StatusForbidden, err)
			return
		}
	}
	name, ok := s.checkNode(w, r)
	if !ok {
		return
	}
	c := s.cluster.Load()
	if c.Nodes == nil || c.APIServers == nil {
		fail(w, r, http.StatusServiceUnavailable, errors.New("the apiserver is not ready"))
		return
	}
	nodes, err := c.Nodes(r.Context())
	if err != nil {
		fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("nodes: %w", err))
		return
	}
	endpoints, err := c.APIServers(r.Context())
	if err != nil {
		fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("apiservers: %w", err))
		return
	}
	api := s.apiNames
	api.ips = slices.Clone(api.ips)
	for _, e := range endpoints {
		if ip := hostIP(e); ip != nil {
			api.ips = append(api.ips, ip)
		}
	}
	req := kubeletRequest{name: name, source: hostIP(r.RemoteAddr), requested: requested}
	dns, ips, err := kubeletSANs(req, nodes, api)
	if err != nil {
		fail(w, r, http.StatusForbidden, err)
		return
	}
	for _, ip := range requested {
		if !slices.ContainsFunc(ips, ip.Equal) {
			slog.Warn("supervisor: a kubelet serving certificate leaves out an address that is neither the request's source nor one its Node registered (it is added at a join after the Node registers it)",
				"node", name, "remote", r.RemoteAddr, "ip", ip)
		}
	}
	s.sign(w, r, s.kubeletCA, s.Paths.Server("tls", "kubelet-serving-ca.crt"),
		pki.Leaf{CN: name, DNS: dns, IPs: ips, Server: true})
}

func (s *Server) clientKubelet(w http.ResponseWriter, r *http.Request) {
	name, ok := s.checkNode(w, r)
	if !ok {
		return
	}
	s.sign(w, r, s.clientCA, s.Paths.Server("tls", "client-ca.crt"),
		pki.Leaf{CN: "system:node:" + name, Org: []string{"system:nodes"}, Client: true})
}

func (s *Server) clientKubeProxy(w http.ResponseWriter, r *http.Request) {
	s.sign(w, r, s.clientCA, s.Paths.Server("tls", "client-ca.crt"), pki.Leaf{CN: "system:kube-proxy", Client: true})
}

// checkNode reads the caller's name and password and checks them with the
// cluster's node passwords; it answers the request itself when they fail.
func (s *Server) checkNode(w http.ResponseWriter, r *http.Request) (string, bool) {
	name, err := nodeName(r)
	if err != nil {
		fail(w, r, http.StatusBadRequest, err)
		return "", false
	}
	password := r.Header.Get(HeaderNodePassword)
	if password == "" {
		fail(w, r, http.StatusBadRequest, fmt.Errorf("no %s header", HeaderNodePassword))
		return "", false
	}
	c := s.cluster.Load()
	if c == nil || c.Passwords == nil {
		fail(w, r, http.StatusServiceUnavailable, errors.New("the apiserver is not ready"))
		return "", false
	}
	err = c.Passwords.Check(r.Context(), name, password)
	if errors.Is(err, ErrUnclaimed) {
		if ok, wait := s.claims.allow(r.RemoteAddr); !ok {
			secs := int((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			fail(w, r, http.StatusTooManyRequests, fmt.Errorf("too many new node names claimed from %s: try again in %d s", claimSource(r.RemoteAddr), secs))
			return "", false
		}
		err = c.Passwords.Claim(r.Context(), name, password)
	}
	switch {
	case errors.Is(err, ErrPasswordRejected):
		s.refuse(w, r, http.StatusForbidden, fmt.Sprintf("node %s: %v", name, err))
	case errors.Is(err, ErrNameRegistered):
		fail(w, r, http.StatusForbidden, err)
	case err != nil:
		fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("node password of %s: %w", name, err))
	default:
		return name, true
	}
	return "", false
}

// sign answers the certificate for the request's key, followed by its CA.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, ca *pki.CA, caFile string, l pki.Leaf) {
	csr, err := io.ReadAll(r.Body)
	if err != nil {
		fail(w, r, http.StatusRequestEntityTooLarge, err)
		return
	}
	crt, err := ca.SignCSR(csr, l)
	if err != nil {
		fail(w, r, http.StatusBadRequest, fmt.Errorf("post a PEM certificate request: %w", err))
		return
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(append(crt, caPEM...))
}
