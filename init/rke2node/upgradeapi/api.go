// Package upgradeapi is the contract between the cluster's upgrade
// controller (on the servers) and each node's upgrader: the UpgradePlan
// custom resource a user creates, and the two annotations on a Node
// through which the controller asks that node to upgrade and the node
// answers. Types and names only; no client code.
//
// The flow, for each node of a plan in turn (servers first, one at a
// time, then agents, Concurrency at once):
//
//  1. The controller cordons and drains the node, then sets RequestKey
//     on its Node: which plan, which artifact.
//  2. The node's upgrader downloads the artifact to its state partition,
//     checks its sha256 and its signature (the image's baked key), writes
//     its slot into the inactive slot, reads it back, asks GRUB to try it
//     and reboots, saying each phase in StatusKey on its own Node.
//  3. Booted on the new slot and Ready, the node confirms the slot and
//     says PhaseDone; if the new slot never got there, GRUB booted the
//     old one and the node says PhaseRolledBack.
//  4. The controller uncordons the node, records it in the plan's status
//     and goes on; a failed or rolled-back node stops the plan.
//
// The controller records each step in the plan's status before it takes
// it (cordon, request), and reads its own state only from there: a
// node's kubelet may write its own Node's annotations, so StatusKey is
// believed only as the answer to a request the plan's status records.
package upgradeapi

import (
	"net/url"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group and version of the UpgradePlan resource.
const (
	Group    = "rke2os.io"
	Version  = "v1"
	Kind     = "UpgradePlan"
	Resource = "upgradeplans"
)

// The Node annotations.
const (
	// RequestKey, set by the controller, holds a Request as JSON.
	RequestKey = "upgrade.rke2os.io/request"
	// StatusKey, set by the node on its own Node, holds a NodeStatus as
	// JSON.
	StatusKey = "upgrade.rke2os.io/status"
)

// UpgradePlan asks for the nodes it selects to run another image.
type UpgradePlan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PlanSpec   `json:"spec"`
	Status            PlanStatus `json:"status,omitempty"`
}

// PlanSpec is what a user asks for.
type PlanSpec struct {
	// Server and Agent are the artifacts (rke2-build image --secrets
	// writes out/rke2-<role>.upgrade) for each role; a node whose role
	// has none is not selected.
	Server *Artifact `json:"server,omitempty"`
	Agent  *Artifact `json:"agent,omitempty"`
	// NodeSelector selects the nodes; empty selects every node.
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// Concurrency is how many agents upgrade at once (default 1); servers
	// always go one at a time.
	Concurrency int `json:"concurrency,omitempty"`
	// DrainTimeout bounds a node's drain (default 10m); a drain that does
	// not finish fails the node and stops the plan.
	DrainTimeout *metav1.Duration `json:"drainTimeout,omitempty"`
}

// Artifact is where an upgrade artifact is and what it must hash to.
type Artifact struct {
	// URL is http(s):// to the artifact file.
	URL string `json:"url"`
	// SHA256 is the artifact file's sha256 (hex).
	SHA256 string `json:"sha256"`
}

// PlanStatus is what the controller says of the rollout.
type PlanStatus struct {
	// Phase is Rolling, Done or Failed.
	Phase string `json:"phase,omitempty"`
	// Done counts nodes done of Total selected.
	Done  int `json:"done"`
	Total int `json:"total"`
	// Nodes is each selected node's phase, in the order they go.
	Nodes []NodeProgress `json:"nodes,omitempty"`
	// Message says why the plan stopped, or what it waits for.
	Message string `json:"message,omitempty"`
}

// Plan phases.
const (
	PlanRolling = "Rolling"
	PlanDone    = "Done"
	PlanFailed  = "Failed"
)

// NodeProgress is one node's line in the plan's status.
type NodeProgress struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Phase   string `json:"phase"`
	Reason  string `json:"reason,omitempty"`
	OSImage string `json:"osImage,omitempty"`
	// SHA256 is the artifact the line is about: the one the plan asks of
	// the node's role.
	SHA256 string `json:"sha256,omitempty"`
	// The controller's records of its own steps, kept here, where only
	// the controller writes (a node may write its own Node's
	// annotations, so none of them is taken from there). DrainSince is
	// when it cordoned the node and began its drain; Requested that the
	// drain ended and it asked the node for SHA256 (RequestKey). A
	// node's answer counts only for a request recorded here.
	DrainSince *metav1.Time `json:"drainSince,omitempty"`
	Requested  bool         `json:"requested,omitempty"`
}

// Node phases, in the plan's status and a node's StatusKey.
const (
	PhaseWaiting     = "waiting"     // not its turn yet
	PhaseDraining    = "draining"    // cordoned, pods being evicted
	PhaseDownloading = "downloading" // fetching and checking the artifact
	PhaseWriting     = "writing"     // writing and reading back the slot
	PhaseRebooting   = "rebooting"   // the new slot armed, reboot asked for
	PhaseDone        = "done"        // Ready on the new slot
	PhaseFailed      = "failed"      // refused or broke before the reboot; still on the old slot
	PhaseRolledBack  = "rolled-back" // the new slot never reached node-ready; back on the old one
)

// Request is the controller's ask to one node (RequestKey).
type Request struct {
	Plan string `json:"plan"`
	// Generation is the plan's metadata.generation the request is for: a
	// changed plan is a new request.
	Generation int64 `json:"generation"`
	Artifact
}

// NodeStatus is a node's answer (StatusKey).
type NodeStatus struct {
	Plan       string      `json:"plan"`
	Generation int64       `json:"generation"`
	SHA256     string      `json:"sha256"` // the request's artifact
	Phase      string      `json:"phase"`
	Reason     string      `json:"reason,omitempty"`
	Slot       string      `json:"slot,omitempty"` // the slot written or booted
	Time       metav1.Time `json:"time"`
}

// For reports whether the status answers the request.
func (s NodeStatus) For(r Request) bool {
	return s.Plan == r.Plan && s.Generation == r.Generation && s.SHA256 == r.SHA256
}

// RedactURL is an artifact's URL for logs, statuses and events: without
// user info, query or fragment, where presigned URLs keep their secrets.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.LastIndex(s, "@"); i >= 0 {
			s = s[i+1:]
		}
		return s
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
