package pods

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rke2os/rke2os/internal/durable"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// StaticPod writes a pod manifest into the kubelet's static pod directory.
//
// The manifest is written to a temporary file outside the directory (the
// kubelet reads every file in it, half-written ones too), synced and renamed
// in. Identical content is not rewritten, so the kubelet does not restart the
// pod. Every file a container names on its command line, and every
// certificate a kubeconfig among them names, gets a read-only host mount
// (as RKE2's ReadFiles finds them, lists too), and the hash of those files
// goes into a FILE_HASH environment value: a changed certificate changes the
// manifest and restarts the pod. Files a component reloads or writes
// (unmountedFileFlags) are left to the directories the pod mounts.
func StaticPod(podDir string, pod *corev1.Pod) (changed bool, err error) {
	if pod.Name == "" {
		return false, fmt.Errorf("static pod: no name")
	}
	pod = pod.DeepCopy()
	if pod.APIVersion == "" {
		pod.APIVersion, pod.Kind = "v1", "Pod"
	}
	if err := mountFileArgs(pod); err != nil {
		return false, fmt.Errorf("static pod %s: %w", pod.Name, err)
	}
	data, err := yaml.Marshal(pod)
	if err != nil {
		return false, fmt.Errorf("static pod %s: %w", pod.Name, err)
	}
	target := filepath.Join(podDir, pod.Name+".yaml")
	if old, err := os.ReadFile(target); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(podDir, 0o700); err != nil {
		return false, err
	}
	// The temporary file lives beside the directory, not in it.
	if err := durable.WriteFileStaged(target, filepath.Dir(podDir), data, 0o600); err != nil {
		return false, fmt.Errorf("static pod %s: %w", pod.Name, err)
	}
	return true, nil
}

// unmountedFileFlags name files that must not be bind-mounted one by one:
// a file mount pins the inode, so a file the component reloads when it is
// replaced would never change inside the container, and a file it writes
// would be read-only. They are seen through a directory mount instead, and
// kept out of FILE_HASH: a new encryption config is reloaded, not a reason
// to restart the apiserver (RKE2 excludes the same two).
var unmountedFileFlags = map[string]bool{
	"--encryption-provider-config": true,
	"--audit-log-path":             true,
}

// fileArgs finds absolute file paths in --flag=/path arguments (and in
// comma-separated lists of them) that exist on the host as regular files,
// and the certificates and keys that a --...kubeconfig file names.
func fileArgs(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		flag, v, ok := strings.Cut(a, "=")
		if !ok {
			v = a
		}
		if unmountedFileFlags[flag] {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			if !isFile(p) {
				continue
			}
			files = append(files, filepath.Clean(p))
			if strings.HasSuffix(flag, "kubeconfig") {
				named, err := kubeconfigFiles(p)
				if err != nil {
					return nil, err
				}
				files = append(files, named...)
			}
		}
	}
	sort.Strings(files)
	return dedupe(files), nil
}

func isFile(p string) bool {
	if !filepath.IsAbs(p) {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// kubeconfigFiles are the CA, certificate and key files a kubeconfig names
// (k3s writes them as absolute paths beside the kubeconfig's own).
func kubeconfigFiles(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CA string `json:"certificate-authority"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert string `json:"client-certificate"`
				Key  string `json:"client-key"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	var files []string
	add := func(p string) {
		if isFile(p) {
			files = append(files, filepath.Clean(p))
		}
	}
	for _, c := range kc.Clusters {
		add(c.Cluster.CA)
	}
	for _, u := range kc.Users {
		add(u.User.Cert)
		add(u.User.Key)
	}
	return files, nil
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func mountFileArgs(pod *corev1.Pod) error {
	h := sha256.New()
	var all []string
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		files, err := fileArgs(append(append([]string{}, c.Command...), c.Args...))
		if err != nil {
			return err
		}
		for _, f := range files {
			if hasMount(c, f) {
				continue
			}
			name := pathVolumeName("file", f)
			if !hasVolume(pod, name) {
				t := corev1.HostPathFile
				pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
					VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: f, Type: &t}}})
			}
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: f, ReadOnly: true})
		}
		all = append(all, files...)
	}
	sort.Strings(all)
	for _, f := range dedupe(all) {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		io.WriteString(h, f+"\x00")
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return err
		}
	}
	if len(all) > 0 {
		sum := hex.EncodeToString(h.Sum(nil))
		for i := range pod.Spec.Containers {
			pod.Spec.Containers[i].Env = append(pod.Spec.Containers[i].Env, corev1.EnvVar{Name: "FILE_HASH", Value: sum})
		}
	}
	return nil
}

func hasVolume(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// hasMount says the container already mounts something at p: the
// kubelet refuses two mounts on one path.
func hasMount(c *corev1.Container, p string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == p {
			return true
		}
	}
	return false
}

// yamlOf renders a pod as StaticPod would, without touching its files.
func yamlOf(pod *corev1.Pod) ([]byte, error) {
	pod = pod.DeepCopy()
	pod.APIVersion, pod.Kind = "v1", "Pod"
	return yaml.Marshal(pod)
}
