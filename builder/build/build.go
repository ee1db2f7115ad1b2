// Package build bakes one node image: it gathers the kernel, GRUB, the init
// and the overlays, and writes the ISO, the raw disk, the PXE files and a
// manifest of every input and output. Outputs are written under temporary
// names and renamed into place only when all of them are complete.
package build

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rke2os/rke2os/internal/artifact"
	"github.com/rke2os/rke2os/internal/fsutil"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/rke2os/rke2os/builder/bootloader"
	"github.com/rke2os/rke2os/builder/content"
	"github.com/rke2os/rke2os/builder/initramfs"
	"github.com/rke2os/rke2os/builder/iso"
	"github.com/rke2os/rke2os/builder/kernel"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/serverpki"
	"github.com/rke2os/rke2os/init/shared/slots"
	rawdisk "github.com/rke2os/rke2os/internal/diskimage"
)

// InputError is bad input from the user (exit code 2): a missing kernel,
// an unknown role, an unwritable output directory.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(format string, a ...any) error { return &InputError{fmt.Errorf(format, a...)} }

// Options are the inputs of one image.
type Options struct {
	Role   string // server or agent
	Output string // directory for the outputs
	Kernel string // directory or .deb
	Grub   string // directory of GRUB's prepared images
	Init   string // the rke2-init binary
	// Node is the rke2-node binary (the init's one-shot steps); empty
	// takes rke2-node beside Init, if it is there. An image with airgap
	// images needs it.
	Node     string
	Overlays string // directory laid into the root
	// Rootfs is a root fragment laid into the root before the overlays:
	// Debian's iptables and nftables with their libraries (images/build.sh
	// unpacks them), which the host's CNI plugins run. Optional.
	Rootfs string
	// Images are airgap image archives (docker save, .tar[.gz|.zst]) baked
	// into the image; one of them must hold rancher/rke2-runtime:<Version>.
	Images []string
	// Version is the RKE2 version the image runs, like v1.34.4+rke2r1.
	Version string
	// OSVersion is the image's own version, in its os-release (and so in
	// the Node's osImage); empty takes Version.
	OSVersion string
	// Config is a node config file baked into the image (optional).
	Config string
	// Secrets is a cluster's secrets (rke2-build secrets) (optional). A
	// server image then holds the cluster's CA keys and tokens; every
	// image, an agent's too, holds the secrets' upgrade.pub, the key its
	// upgrade artifacts must be signed by, and upgrade.key signs them.
	Secrets string
	// Cmdline is appended to the kernel command line.
	Cmdline string
	// Epoch is SOURCE_DATE_EPOCH: every date in every output.
	Epoch time.Time
	// Progress reports long steps; nil logs them.
	Progress Progress
}

// Outputs names the files a build writes, by kind.
type Outputs struct {
	ISO, Raw, Kernel, Initrd, Cmdline, Manifest string
	// Upgrade is the signed upgrade artifact (internal/artifact), written
	// only with Options.Secrets; "" when there is none.
	Upgrade string
}

func outputsFor(dir, role string) Outputs {
	base := filepath.Join(dir, "rke2-"+role)
	return Outputs{ISO: base + ".iso", Raw: base + ".raw", Kernel: base + ".vmlinuz", Initrd: base + ".initrd",
		Cmdline: base + ".cmdline", Manifest: filepath.Join(dir, "manifest.json"), Upgrade: base + ".upgrade"}
}

// Roles are the node roles an image can have.
var Roles = []string{"server", "agent"}

// Image builds the images of one role.
func Image(o Options) (Outputs, error) {
	if o.Progress == nil {
		o.Progress = logProgress{}
	}
	if o.Epoch.IsZero() {
		return Outputs{}, inputErr("no SOURCE_DATE_EPOCH given")
	}
	// go-diskfs' FAT writer takes its dates from the environment.
	os.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(o.Epoch.Unix()))
	if !contains(Roles, o.Role) {
		return Outputs{}, inputErr("unknown role %q: use --role server or --role agent", o.Role)
	}
	if err := os.MkdirAll(o.Output, 0o755); err != nil {
		return Outputs{}, inputErr("output directory %s: %w", o.Output, err)
	}
	tmp, err := os.MkdirTemp(o.Output, ".rke2-build-")
	if err != nil {
		return Outputs{}, inputErr("output directory %s is not writable: %w", o.Output, err)
	}
	defer os.RemoveAll(tmp)
	return image(o, tmp)
}

func image(o Options, tmp string) (Outputs, error) {
	var err error

	var secrets []string // what the outputs carry that is secret
	var upgradePub ed25519.PublicKey
	if o.Secrets != "" {
		// A server takes the cluster's CAs and tokens; an agent never
		// does (it joins with the agent token alone, rke2.token in its
		// config). Both take the upgrade public key.
		if o.Role == "server" {
			if err := serverpki.CheckSecrets(o.Secrets); err != nil {
				return Outputs{}, &InputError{err}
			}
			secrets = append(secrets, "the secrets of "+o.Secrets)
		}
		if upgradePub, err = serverpki.CheckUpgradeKey(o.Secrets); err != nil {
			return Outputs{}, &InputError{err}
		}
		if o.Role != "server" {
			slog.Info("an "+o.Role+" image takes only the upgrade public key of --secrets, never the cluster's CAs and tokens (it joins with agent-token, rke2.token in its config)", "secrets", o.Secrets)
		}
	}
	if o.Config != "" {
		serverToken := ""
		if o.Secrets != "" {
			// Read by CheckSecrets for a server; an agent's config
			// holding it is warned about.
			b, _ := os.ReadFile(filepath.Join(o.Secrets, "token"))
			serverToken = string(b)
		}
		c, warnings, err := validateConfig(o.Config, o.Role, serverToken)
		if err != nil {
			return Outputs{}, &InputError{err}
		}
		for _, w := range warnings {
			slog.Warn("the baked config: "+w, "config", o.Config)
		}
		secrets = append(secrets, c.SecretPaths()...)
	}
	cmdlineWarnings, err := ValidateCmdline(o.Cmdline)
	if err != nil {
		return Outputs{}, &InputError{err}
	}
	if err := bootLoaderKeys(o.Cmdline); err != nil {
		return Outputs{}, &InputError{err}
	}
	for _, w := range cmdlineWarnings {
		slog.Warn("--cmdline: " + w)
	}
	cmdlineSecret := len(config.CmdlineSecretWarnings(o.Cmdline)) > 0
	var images *bakedImages
	if len(o.Images) > 0 {
		done := o.Progress.Step("read images")
		images, err = readImages(o, tmp)
		done()
		if err != nil {
			return Outputs{}, err
		}
	}
	grub, err := bootloader.Load(o.Grub)
	if err != nil {
		return Outputs{}, &InputError{err}
	}
	if err := checkExecutable("init binary", o.Init, "--init"); err != nil {
		return Outputs{}, &InputError{err}
	}
	if o.Node == "" {
		if sib := filepath.Join(filepath.Dir(o.Init), "rke2-node"); exists(sib) {
			o.Node = sib
		} else if len(o.Images) > 0 {
			return Outputs{}, inputErr("no rke2-node beside %s: a node image needs it to extract and import its images (build it with `make tools`, or give --node its path)", o.Init)
		}
	}
	if o.Node != "" {
		if err := checkExecutable("rke2-node binary", o.Node, "--node"); err != nil {
			return Outputs{}, &InputError{err}
		}
	}
	done := o.Progress.Step("open kernel")
	k, err := kernel.Open(o.Kernel, tmp)
	done()
	if err != nil {
		return Outputs{}, &InputError{err}
	}
	defer k.Close()

	m := &Manifest{Role: o.Role, SourceDateEpoch: o.Epoch.Unix(), KernelVersion: k.Version}
	if upgradePub != nil {
		m.UpgradeKey = artifact.Fingerprint(upgradePub)
	}
	staged := outputsFor(tmp, o.Role)

	done = o.Progress.Step("write initramfs")
	err = writeInitramfs(staged.Initrd, k, o, m, images, upgradePub)
	done()
	if err != nil {
		return Outputs{}, err
	}
	if err := fsutil.CopyFile(k.Image, staged.Kernel); err != nil {
		return Outputs{}, err
	}
	// panic=10: a kernel that panics (a broken slot on trial, PID 1 gone)
	// reboots after 10 s on the console, rather than hang: the reboot
	// costs a slot on trial one of its tries.
	base := "console=tty0 console=ttyS0,115200 panic=10 rke2.role=" + o.Role
	if o.Cmdline != "" {
		base += " " + o.Cmdline
	}
	if err := os.WriteFile(staged.Cmdline, []byte(base+"\n"), 0o644); err != nil {
		return Outputs{}, err
	}

	// The slot image first: the ISO carries its digest, for installs.
	done = o.Progress.Step("write system slot image")
	inst, err := writeSlot(staged, tmp, grub, base, o, images)
	done()
	if err != nil {
		return Outputs{}, err
	}
	done = o.Progress.Step("write ISO")
	err = writeISO(staged, tmp, grub, base, o, images, inst)
	done()
	if err != nil {
		return Outputs{}, err
	}
	done = o.Progress.Step("write raw disk")
	err = writeRaw(staged, tmp, inst)
	done()
	if err != nil {
		return Outputs{}, err
	}

	// Inputs by digest.
	m.addInput("kernel", k.Source, k.SourceDigest)
	for _, p := range grub.All() {
		if err := m.addFile("bootloader", p); err != nil {
			return Outputs{}, err
		}
	}
	if err := m.addFile("init", o.Init); err != nil {
		return Outputs{}, err
	}
	if o.Node != "" {
		if err := m.addFile("init", o.Node); err != nil {
			return Outputs{}, err
		}
	}
	if images != nil {
		for _, a := range images.archives {
			if err := m.addFile("images", a); err != nil {
				return Outputs{}, err
			}
		}
		m.Images, m.RKE2Version = images.index, o.Version
	}
	// An output that carries a secret is as private as the secrets: the
	// initrd carries the baked secrets and config, the cmdline file the
	// kernel command line, the ISO and the disk both.
	var private []string
	if len(secrets) > 0 || cmdlineSecret {
		private = append(private, staged.ISO, staged.Raw)
	}
	if len(secrets) > 0 {
		private = append(private, staged.Initrd)
	}
	if cmdlineSecret {
		private = append(private, staged.Cmdline)
	}
	for _, p := range private {
		if err := os.Chmod(p, 0o600); err != nil {
			return Outputs{}, err
		}
	}
	if len(private) > 0 {
		slog.Info("the image carries secrets: its outputs that hold them are private (0600)", "secrets", strings.Join(secrets, ", "), "cmdline", cmdlineSecret)
	}
	if o.Secrets != "" && o.Role == "server" {
		m.Secrets = "baked"
	}
	final := outputsFor(o.Output, o.Role)
	moves := []struct{ staged, final string }{{staged.ISO, final.ISO}, {staged.Raw, final.Raw}, {staged.Kernel, final.Kernel}, {staged.Initrd, final.Initrd}, {staged.Cmdline, final.Cmdline}}
	// The upgrade artifact carries the raw disk's slot image, signed with
	// the secrets' upgrade key: without one, there is none, and an old one
	// would describe another build.
	if o.Secrets != "" {
		slot := slotImage(tmp)
		if len(private) > 0 {
			if err := os.Chmod(slot, 0o600); err != nil {
				return Outputs{}, err
			}
		}
		done = o.Progress.Step("write upgrade artifact")
		err = writeUpgrade(staged.Upgrade, slot, artifact.Manifest{Role: o.Role, Version: cmp.Or(o.Version, "none"), Build: osVersion(o), Created: o.Epoch},
			filepath.Join(o.Secrets, serverpki.UpgradeKeyFile))
		done()
		if err != nil {
			return Outputs{}, err
		}
		moves = append(moves, struct{ staged, final string }{staged.Upgrade, final.Upgrade})
	} else {
		if err := os.Remove(final.Upgrade); err != nil && !os.IsNotExist(err) {
			return Outputs{}, err
		}
		final.Upgrade = ""
	}
	for _, p := range moves {
		d, err := digest(p.staged)
		if err != nil {
			return Outputs{}, err
		}
		m.Outputs = append(m.Outputs, Artifact{Name: filepath.Base(p.final), SHA256: d})
	}
	if err := m.merge(final.Manifest); err != nil {
		return Outputs{}, err
	}
	if err := m.write(staged.Manifest); err != nil {
		return Outputs{}, err
	}
	for _, p := range append(moves, struct{ staged, final string }{staged.Manifest, final.Manifest}) {
		if err := os.Rename(p.staged, p.final); err != nil {
			return Outputs{}, fmt.Errorf("move %s into place: %w", p.final, err)
		}
	}
	return final, nil
}

// ValidateConfig checks a node config file as the init will at boot: the
// schema, and what a node of role needs (an agent needs a server and a
// token). A valid config may still carry warnings, which the init gives at
// every boot too: debug switches that must not reach a production node,
// keys not acted on, an agent given a server token.
func ValidateConfig(path, role string) (warnings []string, err error) {
	_, warnings, err = validateConfig(path, role, "")
	return warnings, err
}

// validateConfig is ValidateConfig for an image that carries serverToken
// ("" for none), and the parsed config.
func validateConfig(path, role, serverToken string) (*config.Config, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := config.Parse(path, b)
	if err != nil {
		return nil, nil, err
	}
	if err := c.Validate(role); err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	warnings := append(c.DebugWarnings(), c.RKE2Warnings()...)
	return c, append(warnings, c.AgentTokenWarnings(role, serverToken)...), nil
}

// ValidateCmdline checks the configs of a kernel command line (its
// rke2.config= parameters) as the init will parse them at boot, and says
// what the command line exposes: secrets, which every process on the node
// reads, and debug parameters. The init warns about both at every boot.
func ValidateCmdline(cmdline string) (warnings []string, err error) {
	if _, err := config.ParseCmdline(cmdline); err != nil {
		return nil, err
	}
	return append(config.CmdlineDebugWarnings(cmdline), config.CmdlineSecretWarnings(cmdline)...), nil
}

// bootLoaderKeys refuses, in --cmdline, the keys the build and GRUB put
// on the kernel command line themselves.
func bootLoaderKeys(cmdline string) error {
	// Split as the kernel and PID 1 split it: a quoted "rke2.reset=1" is
	// rke2.reset=1 to them.
	for _, f := range config.SplitCmdline(cmdline) {
		k, _, _ := strings.Cut(f, "=")
		switch k {
		case "rke2.medium", "rke2.slot", "rke2.trial", "rke2.reset", "rke2.role":
			return fmt.Errorf("--cmdline: %s is set by the image's boot loader (rke2.reset by its menu's reset entry, for one boot); remove it", k)
		}
	}
	return nil
}

// initramfsModules reads the module names the overlays ask for
// (etc/modules-load.d/*.conf, one per line, # comments).
func initramfsModules(overlays string) ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(overlays, "etc", "modules-load.d", "*.conf"))
	if len(files) == 0 {
		return nil, inputErr("no module list: %s/etc/modules-load.d/*.conf names the kernel modules the initramfs carries", overlays)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l != "" && !strings.HasPrefix(l, "#") {
				names = append(names, l)
			}
		}
	}
	return names, nil
}

// writeInitramfs writes the initramfs; upgradePub, if any, is the key the
// node's upgrade artifacts must be signed by.
func writeInitramfs(out string, k *kernel.Kernel, o Options, m *Manifest, images *bakedImages, upgradePub ed25519.PublicKey) error {
	a := initramfs.New(o.Epoch.Unix())
	if images != nil {
		rel, err := images.release(o.Version)
		if err != nil {
			return err
		}
		if err := a.Bytes(strings.TrimPrefix(layout.Release, "/"), rel, 0o644); err != nil {
			return err
		}
	}
	if err := a.File("init", o.Init, 0o755); err != nil {
		return err
	}
	rel, err := osRelease(o)
	if err != nil {
		return err
	}
	if err := a.Bytes(strings.TrimPrefix(layout.OSRelease, "/"), rel, 0o644); err != nil {
		return err
	}
	if o.Node != "" {
		if err := a.File(strings.TrimPrefix(layout.NodeBinary, "/"), o.Node, 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "etc", "var", "root"} {
		if err := a.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := a.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := a.CharDev("dev/null", 0o666, 1, 3); err != nil {
		return err
	}
	if o.Config != "" {
		if err := a.File(strings.TrimPrefix(layout.BakedConfig, "/"), o.Config, 0o600); err != nil {
			return err
		}
		if err := m.addFile("config", o.Config); err != nil {
			return err
		}
	}
	if o.Rootfs != "" {
		// A link to the tree of the day (build/cache/iptables) is followed.
		dir, err := filepath.EvalSymlinks(o.Rootfs)
		if err == nil {
			err = a.Tree("", dir)
		}
		if err != nil {
			return &InputError{fmt.Errorf("rootfs %s: %w", o.Rootfs, err)}
		}
		if err := m.addTree("rootfs", dir); err != nil {
			return err
		}
	}
	if o.Overlays != "" {
		if err := a.Tree("", o.Overlays); err != nil {
			return &InputError{fmt.Errorf("overlays %s: %w", o.Overlays, err)}
		}
		if err := m.addTree("overlay", o.Overlays); err != nil {
			return err
		}
	}
	// After the overlays, so that nothing there can stand in for them. Not
	// in the manifest: their names and digests are nobody's business. An
	// agent takes none of them.
	if o.Secrets != "" && o.Role == "server" {
		if err := bakeSecrets(a, o.Secrets); err != nil {
			return err
		}
	}
	// The upgrade public key, as checked, in every image built with it:
	// also after the overlays.
	if upgradePub != nil {
		b, err := artifact.MarshalPublicKey(upgradePub)
		if err != nil {
			return err
		}
		if err := a.Bytes(strings.TrimPrefix(layout.UpgradePublicKey, "/"), b, 0o644); err != nil {
			return err
		}
	}
	names, err := initramfsModules(o.Overlays)
	if err != nil {
		return err
	}
	set, err := k.Modules()
	if err != nil {
		return &InputError{err}
	}
	files, missing, err := set.Resolve(names)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		slog.Warn("modules not in this kernel (built in, or not built)", "modules", strings.Join(missing, " "))
	}
	modDir := "lib/modules/" + k.Version
	for _, f := range files {
		if err := a.File(modDir+"/"+f, filepath.Join(set.Dir(), f), 0o644); err != nil {
			return err
		}
	}
	if err := a.Bytes(modDir+"/"+layout.ModuleList, []byte(strings.Join(files, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	m.Modules = files
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := a.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write initramfs: %w", err)
	}
	return f.Close()
}

// bakeSecrets adds every file below dir to the initramfs at
// layout.BakedSecrets, in the same layout: files 0600, directories
// 0700. The upgrade key pair stays out: upgrade.key never goes into an
// image, and upgrade.pub has a place of its own.
func bakeSecrets(a *initramfs.Archive, dir string) error {
	root := strings.TrimPrefix(layout.BakedSecrets, "/")
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if slices.Contains(serverpki.UpgradeKeyFiles(), filepath.ToSlash(rel)) {
			return nil
		}
		name := path.Join(root, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return a.Dir(name, 0o700)
		case d.Type().IsRegular():
			return a.File(name, p, 0o600)
		}
		return inputErr("secrets %s: %s is neither a file nor a directory", dir, p)
	})
}

func writeISO(staged Outputs, tmp string, grub *bootloader.Files, cmdline string, o Options, images *bakedImages, inst *install) error {
	cfg := filepath.Join(tmp, "grub-iso.cfg")
	title := "RKE2 " + o.Role
	if err := os.WriteFile(cfg, bootloader.Config(bootloader.Entry{Title: title, SystemLabel: layout.BootLabel,
		Cmdline: cmdline + " rke2.medium=" + layout.BootLabel}), 0o644); err != nil {
		return err
	}
	efiImg := filepath.Join(tmp, "efi.img")
	if err := writeEFIImage(efiImg, grub.EFIISO); err != nil {
		return err
	}
	ws := filepath.Join(tmp, "iso-workspace")
	if err := os.Mkdir(ws, 0o755); err != nil {
		return err
	}
	files := []iso.File{
		{Path: "/boot/vmlinuz", Source: staged.Kernel},
		{Path: "/boot/initrd", Source: staged.Initrd},
		{Path: "/boot/grub/grub.cfg", Source: cfg},
		{Path: "/boot/grub/eltorito.img", Source: grub.ElTorito},
		{Path: "/boot/grub/efi.img", Source: efiImg},
	}
	for _, f := range images.files() {
		files = append(files, iso.File{Path: f[0], Source: f[1]})
	}
	// What an install needs beyond the slot's files, which the ISO
	// carries already: the slot's own files (slot.cfg, os-release), GRUB's
	// disk images and the install manifest.
	for _, p := range slices.Sorted(maps.Keys(inst.sources)) {
		if !slices.ContainsFunc(files, func(f iso.File) bool { return f.Path == p }) {
			files = append(files, iso.File{Path: p, Source: inst.sources[p]})
		}
	}
	return iso.Write(staged.ISO, ws, iso.Spec{
		VolumeID: layout.BootLabel,
		Files:    files,
		BIOSBoot: "/boot/grub/eltorito.img",
		EFIBoot:  "/boot/grub/efi.img",
		Epoch:    o.Epoch,
	})
}

// writeEFIImage writes the FAT image of the ISO's UEFI El Torito entry.
// OVMF ignores a FAT32 image smaller than about 33 MiB, hence 40.
func writeEFIImage(out, efiBinary string) error {
	d, err := diskfs.Create(out, 40<<20, diskfs.SectorSizeDefault)
	if err != nil {
		return err
	}
	defer d.Close()
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeFat32, VolumeLabel: "RKE2_EFI", Reproducible: true})
	if err != nil {
		return fmt.Errorf("EFI image: %w", err)
	}
	if err := fs.Mkdir("/EFI/BOOT"); err != nil {
		return fmt.Errorf("EFI image: %w", err)
	}
	b, err := os.ReadFile(efiBinary)
	if err != nil {
		return err
	}
	w, err := fs.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("EFI image: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("EFI image: %w", err)
	}
	return w.Close()
}

// install is how the disk is written, by the build (the raw disk) and by
// an install from the ISO: the manifest the ISO carries, and the files
// its paths name on the build machine.
type install struct {
	manifest *rawdisk.Manifest
	sources  map[string]string // path on the ISO -> file here
}

// local is the file on the build machine of a path on the ISO.
func (in *install) local(medium string) string { return in.sources[medium] }

// writeSlot writes the system slot's image and what an install needs:
// GRUB's disk images and the disk's ESP files, under layout.InstallDir,
// and the manifest listing them with the slot's files. A system slot holds
// the kernel, the initramfs, the slot's kernel command line for GRUB
// (slot.cfg), its os-release and the airgap images; an upgrade artifact
// carries the same slot.
func writeSlot(staged Outputs, tmp string, grub *bootloader.Files, cmdline string, o Options, images *bakedImages) (*install, error) {
	mbr, err := grub.MBR(rawdisk.BIOSPartitionLBA)
	if err != nil {
		return nil, err
	}
	core, err := grub.CoreImage(rawdisk.BIOSPartitionLBA)
	if err != nil {
		return nil, err
	}
	rel, err := osRelease(o)
	if err != nil {
		return nil, err
	}
	env, err := slots.Env{}.Bytes() // good=A, as grub.cfg reads an empty block
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "install")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	in := &install{sources: map[string]string{}}
	add := func(medium string, data []byte) (string, error) {
		p := filepath.Join(dir, path.Base(medium))
		in.sources[medium] = p
		return medium, os.WriteFile(p, data, 0o644)
	}
	m := &rawdisk.Manifest{Format: rawdisk.ManifestFormat, Role: o.Role, Epoch: o.Epoch.Unix(), ESPLabel: layout.ESPLabel, StateSize: 256 << 20}
	for _, f := range []struct {
		dst  *string
		path string
		data []byte
	}{{&m.MBR, "mbr.bin", mbr}, {&m.Core, "core.img", core}} {
		if *f.dst, err = add(path.Join(layout.InstallDir, f.path), f.data); err != nil {
			return nil, err
		}
	}
	efi, err := os.ReadFile(grub.EFI)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		esp, medium string
		data        []byte
	}{
		{"/EFI/BOOT/BOOTX64.EFI", "bootx64.efi", efi},
		{"/boot/grub/grub.cfg", "grub.cfg", bootloader.DiskConfig("RKE2 " + o.Role)},
		{layout.GRUBEnv, "grubenv", env},
	} {
		medium, err := add(path.Join(layout.InstallDir, f.medium), f.data)
		if err != nil {
			return nil, err
		}
		m.ESP = append(m.ESP, rawdisk.ManifestFile{Path: f.esp, Medium: medium})
	}
	// The slot's files are on the ISO at the paths they have in the slot.
	slot := [][2]string{{"/boot/vmlinuz", staged.Kernel}, {"/boot/initrd", staged.Initrd}}
	for _, f := range []struct {
		path string
		data []byte
	}{{bootloader.SlotConfigPath, bootloader.SlotConfig(cmdline)}, {"/boot/os-release", rel}} {
		p := filepath.Join(dir, "slot-"+path.Base(f.path))
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return nil, err
		}
		slot = append(slot, [2]string{f.path, p})
	}
	slot = append(slot, images.files()...)
	var files []rawdisk.File
	for _, f := range slot {
		in.sources[f[0]] = f[1]
		m.Slot = append(m.Slot, rawdisk.ManifestFile{Path: f[0], Medium: f[0]})
		files = append(files, rawdisk.File{Path: f[0], Source: f[1]})
	}
	img := slotImage(tmp)
	if err := rawdisk.WriteSlot(img, files); err != nil {
		return nil, err
	}
	if m.SlotSHA256, err = digest(img); err != nil {
		return nil, err
	}
	fi, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	m.SlotSize = fi.Size()
	b, err := m.Bytes()
	if err != nil {
		return nil, err
	}
	if _, err := add(layout.InstallManifest, b); err != nil {
		return nil, err
	}
	in.manifest = m
	return in, nil
}

// slotImage is where the build writes the system slot's image.
func slotImage(tmp string) string { return filepath.Join(tmp, "slot.img") }

// writeRaw writes the raw disk as an install does, from the manifest,
// with the slot image the build wrote.
func writeRaw(staged Outputs, tmp string, in *install) error {
	spec, err := in.manifest.Spec(in.local)
	if err != nil {
		return err
	}
	spec.Slot, spec.SlotFiles = slotImage(tmp), nil
	return rawdisk.Write(staged.Raw, spec)
}

func checkExecutable(what, p, flag string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w (build it with `make tools`, or give %s its path)", what, err, flag)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s %s is not an executable file", what, p)
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func digest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Manifest records every input and output of a build by digest.
type Manifest struct {
	Role            string     `json:"role"`
	SourceDateEpoch int64      `json:"source_date_epoch"`
	KernelVersion   string     `json:"kernel_version"`
	Inputs          []Artifact `json:"inputs"`
	Modules         []string   `json:"modules"`
	RKE2Version     string     `json:"rke2_version,omitempty"`
	// Secrets is "baked" when the image holds a cluster's secrets; which
	// ones, and their digests, are not recorded.
	Secrets string `json:"secrets,omitempty"`
	// UpgradeKey is the fingerprint (sha256 of its 32 bytes) of the
	// upgrade public key the image carries, if any.
	UpgradeKey string `json:"upgrade_key,omitempty"`
	// Images lists every image baked in, by name and digest.
	Images  []content.IndexEntry `json:"images,omitempty"`
	Outputs []Artifact           `json:"outputs"`

	existing manifestFile
}

// Artifact is one file and its digest.
type Artifact struct {
	Kind   string `json:"kind,omitempty"`
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

func (m *Manifest) addInput(kind, name, d string) {
	m.Inputs = append(m.Inputs, Artifact{Kind: kind, Name: name, SHA256: d})
}

func (m *Manifest) addFile(kind, p string) error {
	d, err := digest(p)
	if err != nil {
		return err
	}
	m.addInput(kind, p, d)
	return nil
}

func (m *Manifest) addTree(kind, dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return m.addFile(kind, p)
	})
}

// manifestFile is out/manifest.json: one entry per role, so that building
// the agent next to the server keeps both.
type manifestFile struct {
	Images map[string]*Manifest `json:"images"`
}

func (m *Manifest) merge(existing string) error {
	m.existing = manifestFile{Images: map[string]*Manifest{}}
	b, err := os.ReadFile(existing)
	if err == nil {
		if err := json.Unmarshal(b, &m.existing); err != nil || m.existing.Images == nil {
			m.existing = manifestFile{Images: map[string]*Manifest{}}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (m *Manifest) write(out string) error {
	mf := m.existing
	mf.Images[m.Role] = m
	b, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}
