package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// cmdAdd sets up the pod's network by running the delegate with a config
// built from the current lease, and prints the delegate's result.
func cmdAdd(args *skel.CmdArgs) error {
	n, err := parseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	env, err := loadSubnetEnv(n.SubnetFile)
	if errors.Is(err, fs.ErrNotExist) {
		// flanneld will write it once it is up: the spec's code for a
		// transient condition tells the runtime to retry, not give up.
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	if err != nil {
		return err
	}
	d, err := delegateConfig(n, env)
	if err != nil {
		return err
	}
	conf, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("flannel: encode delegate config: %w", err)
	}
	// Saved before the delegate runs, and kept if it fails: a failed ADD
	// may have left an interface or an address behind, and the runtime's
	// DEL that follows needs this config to clean them up.
	if err := saveDelegateConf(n.DataDir, args.ContainerID, conf); err != nil {
		return err
	}
	result, err := invoke.DelegateAdd(context.Background(), d["type"].(string), conf, nil)
	if err != nil {
		return delegateError("ADD", err)
	}
	return types.PrintResult(result, n.CNIVersion)
}

// cmdDel tears down what ADD set up, from the config ADD saved. It does not
// read subnet.env: pods must be deletable while flanneld is down, and the
// lease may have changed since ADD.
func cmdDel(args *skel.CmdArgs) error {
	n, err := parseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	conf, typ, err := loadDelegateConf(n, args.ContainerID)
	if errors.Is(err, fs.ErrNotExist) {
		// Never added, or already deleted: the spec wants DEL to succeed
		// then, since runtimes repeat DEL until it does.
		return nil
	}
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(context.Background(), typ, conf, nil); err != nil {
		// Keep the saved config so that the runtime's retry can try again.
		return delegateError("DEL", err)
	}
	path := filepath.Join(n.DataDir, args.ContainerID)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("flannel: remove %s: %w", path, err)
	}
	return nil
}

// cmdCheck has the delegate verify what ADD set up, against the config ADD
// saved, so a changed lease does not make a healthy pod fail its check.
func cmdCheck(args *skel.CmdArgs) error {
	n, err := parseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	conf, typ, err := loadDelegateConf(n, args.ContainerID)
	if err != nil {
		return err
	}
	if err := invoke.DelegateCheck(context.Background(), typ, conf, nil); err != nil {
		return delegateError("CHECK", err)
	}
	return nil
}

// delegateError adds context to a delegate's error. A *types.Error keeps
// its code, which the runtime may act on; skel would otherwise unwrap it
// from a fmt.Errorf wrapping and print it without our context.
func delegateError(verb string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return &types.Error{Code: te.Code, Msg: "flannel: delegate " + verb + ": " + te.Msg, Details: te.Details}
	}
	return fmt.Errorf("flannel: delegate %s: %w", verb, err)
}

// saveDelegateConf writes conf to dataDir/containerID. The write is atomic
// (temporary file, then rename) because a torn file would leave DEL unable
// to parse it and the pod's network impossible to clean up; the directory
// and file are private because the config is nobody else's business.
func saveDelegateConf(dataDir, containerID string, conf []byte) (err error) {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("flannel: create %s: %w", dataDir, err)
	}
	path := filepath.Join(dataDir, containerID)
	// CreateTemp makes the file 0600.
	f, err := os.CreateTemp(dataDir, "."+containerID+".tmp*")
	if err != nil {
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(conf); err != nil {
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	// Sync so that a crash right after the rename cannot leave an empty
	// file under the final name.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	return nil
}

// loadDelegateConf reads the delegate config ADD saved for the container
// and returns it with the delegate's type. The runtime's prevResult, if
// given, replaces the saved one: CHECK needs it (bridge refuses a CHECK
// without it), and it is the runtime's record of what ADD returned.
func loadDelegateConf(n *netConf, containerID string) ([]byte, string, error) {
	if err := checkContainerID(containerID); err != nil {
		return nil, "", err
	}
	path := filepath.Join(n.DataDir, containerID)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("flannel: read %s: %w", path, err)
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, "", fmt.Errorf("flannel: parse %s: %w", path, err)
	}
	var typ string
	if err := json.Unmarshal(d["type"], &typ); err != nil || typ == "" {
		return nil, "", fmt.Errorf("flannel: %s has no delegate type", path)
	}
	if len(n.PrevResult) == 0 || string(n.PrevResult) == "null" {
		return data, typ, nil
	}
	d["prevResult"] = n.PrevResult
	if data, err = json.Marshal(d); err != nil {
		return nil, "", fmt.Errorf("flannel: encode delegate config: %w", err)
	}
	return data, typ, nil
}

// checkContainerID refuses IDs that are not a plain file name. skel already
// validates CNI_CONTAINERID, but the ID becomes a path here, so make sure.
func checkContainerID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id {
		return fmt.Errorf("flannel: invalid container ID %q", id)
	}
	return nil
}
