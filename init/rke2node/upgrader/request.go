package upgrader

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
)

// ErrRequest is a request that the node refuses as it stands: it is JSON
// of a Request, but a field is not valid.
var ErrRequest = errors.New("upgrade request not valid")

// maxAnnotation bounds the annotations the node parses: an annotation can
// be up to 256 KiB, a request is a few hundred bytes.
const maxAnnotation = 16 << 10

// ParseRequest reads RequestKey's value and checks it: a plan name, an
// http or https URL with a host, and a sha256 of 64 hex digits. A value
// that is not a Request's JSON is an error that does not wrap ErrRequest
// (the request is zero); one whose fields are not valid wraps ErrRequest
// and comes with the request as read, so that the node can answer it.
func ParseRequest(s string) (upgradeapi.Request, error) {
	var r upgradeapi.Request
	if len(s) > maxAnnotation {
		return r, fmt.Errorf("%s is %d bytes; a request is at most %d", upgradeapi.RequestKey, len(s), maxAnnotation)
	}
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return upgradeapi.Request{}, fmt.Errorf("%s is not a request's JSON: %v", upgradeapi.RequestKey, err)
	}
	if err := checkRequest(r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrRequest, err)
	}
	return r, nil
}

func checkRequest(r upgradeapi.Request) error {
	if r.Plan == "" || len(r.Plan) > 253 {
		return errors.New("plan: want the UpgradePlan's name (1 to 253 characters)")
	}
	if err := checkURL(r.URL); err != nil {
		return err
	}
	if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %s: want 64 hex digits (the artifact file's sha256)", quote(r.SHA256))
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %s: %v", quote(redact(s)), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %s: want http:// or https://", quote(redact(s)))
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("url %s: no host", quote(redact(s)))
	}
	return nil
}

// redact is upgradeapi.RedactURL.
func redact(s string) string { return upgradeapi.RedactURL(s) }

// quote quotes s for a message, shortened: it comes from the cluster.
func quote(s string) string {
	if len(s) > 96 {
		return fmt.Sprintf("%q...", s[:96])
	}
	return fmt.Sprintf("%q", s)
}

// parseStatus reads StatusKey's value; anything but a NodeStatus's JSON
// is no answer.
func parseStatus(s string) (upgradeapi.NodeStatus, bool) {
	var st upgradeapi.NodeStatus
	if s == "" || len(s) > maxAnnotation || json.Unmarshal([]byte(s), &st) != nil {
		return upgradeapi.NodeStatus{}, false
	}
	return st, true
}

// final reports whether a node phase ends a request: the node does not
// carry it out again.
func final(phase string) bool {
	switch phase {
	case upgradeapi.PhaseDone, upgradeapi.PhaseFailed, upgradeapi.PhaseRolledBack:
		return true
	}
	return false
}

// sameSHA256 compares two sha256s in hex, whatever their case.
func sameSHA256(a, b string) bool { return strings.EqualFold(a, b) }
