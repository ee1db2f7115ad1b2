package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/rke2os/rke2os/init/shared/serverpki"
	"github.com/rke2os/rke2os/internal/durable"
)

// secrets makes a new cluster's CAs, service account key, tokens and
// upgrade signing key; or adds the upgrade signing key alone to secrets
// made before it.
func secrets(args []string, stdout, _ io.Writer) error {
	fl := flag.NewFlagSet("secrets", flag.ContinueOnError)
	out := fl.String("output", "", "directory to create for the secrets (must not exist)")
	keyOnly := fl.String("upgrade-key-only", "", "add only the upgrade signing key pair (upgrade.key, upgrade.pub) to `DIR`, secrets made before it; nothing else there changes, and a key already there is never replaced")
	if err := parse(fl, args, "rke2-build secrets --output DIR | --upgrade-key-only DIR", false, stdout); err != nil {
		return err
	}
	switch {
	case *out != "" && *keyOnly != "":
		return usagef("give --output DIR (new secrets) or --upgrade-key-only DIR (the upgrade key alone, for secrets made before it), not both")
	case *keyOnly != "":
		if err := serverpki.AddUpgradeKey(*keyOnly); err != nil {
			return inputError{err}
		}
		fmt.Fprintf(stdout, "%s: signs the upgrade artifacts of images built with --secrets %s, which carry %s; keep it as private as the CAs\n",
			filepath.Join(*keyOnly, serverpki.UpgradeKeyFile), *keyOnly, serverpki.UpgradePublicKeyFile)
		fmt.Fprintln(stdout, "images built before carry no upgrade key: rebuild and reinstall them to upgrade them with signed artifacts")
		return nil
	case *out == "":
		return usagef("give --output DIR, a directory that does not exist yet (or --upgrade-key-only DIR to add the upgrade signing key to secrets made before it)")
	}
	if err := serverpki.GenerateSecrets(*out); err != nil {
		return inputError{err}
	}
	fmt.Fprintf(stdout, "%s: the cluster's CAs and tokens; keep it private, and bake it with rke2-build image --secrets %s\n", *out, *out)
	fmt.Fprintf(stdout, "agents join with %s (rke2.token in an agent's config); %s is for servers only\n",
		filepath.Join(*out, "agent-token"), filepath.Join(*out, "token"))
	fmt.Fprintf(stdout, "%s signs the upgrade artifacts of images built with --secrets, servers' and agents', which carry %s\n",
		filepath.Join(*out, serverpki.UpgradeKeyFile), serverpki.UpgradePublicKeyFile)
	return nil
}

// kubeconfig prints, or writes, an admin kubeconfig made from the secrets.
func kubeconfig(args []string, stdout, _ io.Writer) error {
	fl := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	dir := fl.String("secrets", "", "the directory rke2-build secrets made")
	server := fl.String("server", "", "the apiserver's URL, like https://192.0.2.10:6443")
	out := fl.String("output", "", "file to write (0600, replaced); default standard output")
	if err := parse(fl, args, "rke2-build kubeconfig --secrets DIR --server https://ADDR:6443 [--output FILE]", false, stdout); err != nil {
		return err
	}
	if *dir == "" || *server == "" {
		return usagef("give --secrets DIR and --server https://ADDR:6443")
	}
	kc, err := serverpki.AdminKubeconfig(*dir, *server)
	if err == nil && *out != "" {
		err = durable.WriteFile(*out, kc, 0o600)
	}
	if err != nil {
		return inputError{err}
	}
	if *out == "" {
		stdout.Write(kc)
	}
	return nil
}
