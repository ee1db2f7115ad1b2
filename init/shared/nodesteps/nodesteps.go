// Package nodesteps is how PID 1 runs rke2-node, the node's heavy one-shot
// steps (extracting the runtime, importing the airgap images, writing
// etcd's static pod), each as a child process that exits when done.
//
// The split keeps PID 1 small: containerd's client, the Kubernetes API
// types and the image readers are linked into rke2-node only, so the
// process that lives as long as the machine never pays for their package
// initialisation or their buffers, and a crash in them cannot take PID 1
// down. This package is the light side: where the binary is, what each
// step answers, and how to run one.
package nodesteps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/rke2os/rke2os/init/shared/supervise"
)

// The steps, as rke2-node's first argument.
const (
	StepContent = "content" // extract the runtime image as RKE2 does
	StepImport  = "import"  // import the airgap archives into containerd
	StepEtcd    = "etcd"    // etcd's certificates and static pod
	// StepServer is not one-shot: the server's long-running side (the
	// control plane's gating), a supervised service of PID 1.
	StepServer = "server"
	// StepJoin joins an agent to its server through the supervisor
	// (certificates, kubeconfigs, kube-proxy's pod); it waits while the
	// server is not ready and fails on a refusal.
	StepJoin = "join"
	// StepAgent is an agent's long-running side, a service: the local
	// load balancer in front of the apiservers, and node-ready.
	StepAgent = "agent"
	// StepInstall writes the system from the ISO onto a disk (the config's
	// install section, given as flags) with the node's config (a file),
	// and answers InstallResult; the caller reboots or powers off.
	StepInstall = "install"
	// StepUnpack is a service that ends: it unpacks every image in
	// containerd not unpacked yet, at the lowest priority and with no
	// deadline, then exits.
	StepUnpack = "unpack"
)

// The install step's flags: the config's install section (min-size in
// bytes), the boot medium's device and the file of the config to carry
// over.
const (
	FlagInstallDevice  = "device"
	FlagInstallMinSize = "min-size"
	FlagInstallModel   = "model"
	FlagInstallSerial  = "serial"
	FlagInstallWipe    = "wipe"
	FlagInstallAfter   = "after"
	FlagInstallMedium  = "medium"
	FlagInstallConfig  = "config"
)

// InstallResult is what the install step answers.
type InstallResult struct {
	Device string `json:"device"` // the disk written, /dev/vda
	// Found is what the disk held before ("blank", "an unfinished rke2os
	// install", or what wipe: true let the install overwrite).
	Found      string  `json:"found"`
	Bytes      int64   `json:"bytes"` // the disk's size
	SlotSHA256 string  `json:"slot_sha256"`
	Seconds    float64 `json:"seconds"` // the whole install step
	// Written is what the install wrote (the ESP and the system slot's
	// image), in WriteSeconds (written, synced and read back).
	Written      int64   `json:"written"`
	WriteSeconds float64 `json:"write_seconds"`
}

// FlagTrustOnFirstUse is the etcd step's flag that carries the config's
// join.trust_on_first_use: the step reads RKE2's config.yaml, which has
// no such key.
const FlagTrustOnFirstUse = "trust-on-first-use"

// FlagAtBoot marks the etcd step's run at boot, before the kubelet
// starts: only then, etcd not running, may a server set its etcd data
// aside to rejoin its cluster (the step runs again after a clock step).
const FlagAtBoot = "at-boot"

// JoinResult is what the join step answers.
type JoinResult struct {
	Server        string   `json:"server"`
	CAHash        string   `json:"ca_hash"`
	APIServers    []string `json:"apiservers"`
	ClusterDNS    string   `json:"cluster_dns"`
	ClusterDomain string   `json:"cluster_domain"`
	Seconds       float64  `json:"seconds"`
}

// ContentResult is what the content step answers.
type ContentResult struct {
	DataKey string  `json:"data_key"`
	BinDir  string  `json:"bin_dir"`
	Skipped bool    `json:"skipped"`
	Seconds float64 `json:"seconds"`
}

// ImportResult is what the import step answers.
type ImportResult struct {
	Imported int `json:"imported"`
	Skipped  int `json:"skipped"`
	Images   int `json:"images"`
	// Unpacked counts the node's own images unpacked (none once done).
	Unpacked int `json:"unpacked"`
}

// EtcdResult is what the etcd step answers.
type EtcdResult struct {
	Manifest string `json:"manifest"`
	Changed  bool   `json:"changed"`
	// PKIWritten counts the server's certificates, keys, kubeconfigs and
	// secrets made or re-issued (0 when all were in place); Warnings are
	// what is kept but wrong (a CA not valid now).
	PKIWritten int      `json:"pki_written"`
	Warnings   []string `json:"warnings,omitempty"`
}

// Failure is the answer of a step that failed: its error in plain words.
type Failure struct {
	Error string `json:"error"`
}

// Run runs one step of the binary at path through the reaper (PID 1 must
// not race its own reaper with exec.Cmd.Wait) and decodes its answer into
// result. The step's logs go to the console, as PID 1's do.
func Run(r *supervise.Reaper, path string, result any, step string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(path, append([]string{step}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	runErr := r.Run(cmd)
	var f Failure
	if json.Unmarshal(out.Bytes(), &f) == nil && f.Error != "" {
		return errors.New(f.Error)
	}
	if runErr != nil {
		return fmt.Errorf("rke2-node %s: %w", step, runErr)
	}
	if err := json.Unmarshal(out.Bytes(), result); err != nil {
		return fmt.Errorf("rke2-node %s: answer %q: %w", step, out.String(), err)
	}
	return nil
}
