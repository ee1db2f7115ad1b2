package build

import (
	"bufio"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rke2os/rke2os/internal/artifact"
)

// writeUpgrade writes out, the upgrade artifact (internal/artifact) of the
// slot image file slotImage, described by m (role, RKE2 version, build id,
// date; the slot image's size and sha256 are measured) and signed with
// the private key in keyFile, a secrets directory's upgrade.key. It goes
// through a temporary file beside out, checked as a node checks it, then
// renamed over out: no reader ever sees half of one, and a failure leaves
// out as it was. out is as private as the slot image it carries (whose
// initrd may hold the cluster's secrets or a config's): 0600 if others
// may not read slotImage, 0644 otherwise.
func writeUpgrade(out, slotImage string, m artifact.Manifest, keyFile string) error {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return &InputError{fmt.Errorf("upgrade signing key: %w", err)}
	}
	key, err := artifact.ParsePrivateKey(b)
	if err != nil {
		return &InputError{fmt.Errorf("%s: %w", keyFile, err)}
	}
	slot, err := os.Open(slotImage)
	if err != nil {
		return err
	}
	defer slot.Close()
	fi, err := slot.Stat()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi.Mode().Perm()&0o004 == 0 {
		mode = 0o600
	}

	// CreateTemp makes it 0600: private while it is written.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	err = artifact.Write(w, m, slot, key)
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if _, err := artifact.VerifyFile(tmp.Name(), key.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("write %s: the artifact written does not verify: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("move %s into place: %w", out, err)
	}
	return nil
}
