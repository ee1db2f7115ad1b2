package host

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/internal/durable"
)

// EnsureNodePassword makes the node's password once, as RKE2's agent does
// (32 random hex characters, mode 0600), and keeps the one it finds. An
// unreadable or empty file is an error, never replaced: a new password would
// lock the node out of its own name on the server.
func EnsureNodePassword(root string) (created bool, err error) {
	p := filepath.Join(root, layout.NodePassword)
	b, err := os.ReadFile(p)
	switch {
	case err == nil && strings.TrimSpace(string(b)) != "":
		return false, nil
	case err == nil:
		return false, fmt.Errorf("node password %s is empty: remove it to make a new one (the server then refuses this node's name until its Node is deleted)", layout.NodePassword)
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("node password: %w", err)
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return false, fmt.Errorf("node password: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return false, fmt.Errorf("node password: %w", err)
	}
	if err := durable.WriteFile(p, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("node password: %w", err)
	}
	return true, nil
}
