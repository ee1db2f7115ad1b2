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

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// StaticPod writes a pod manifest into the kubelet's static pod directory.
//
// The manifest is written to a temporary file outside the directory (the
// kubelet reads every file in it, half-written ones too), synced and renamed
// in. Identical content is not rewritten, so the kubelet does not restart the
// pod. Every file a container names on its command line gets a read-only
// host mount, and the hash of those files goes into a FILE_HASH environment
// value: a changed certificate changes the manifest and restarts the pod.
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
	tmp, err := os.CreateTemp(filepath.Dir(podDir), "."+pod.Name+".yaml.")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return false, fmt.Errorf("static pod %s: %w", pod.Name, err)
	}
	return true, nil
}

// fileArgs finds absolute file paths in --flag=/path arguments that exist on
// the host as regular files.
func fileArgs(args []string) []string {
	var files []string
	for _, a := range args {
		_, v, ok := strings.Cut(a, "=")
		if !ok {
			v = a
		}
		for _, p := range strings.Split(v, ",") {
			if !filepath.IsAbs(p) {
				continue
			}
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				files = append(files, filepath.Clean(p))
			}
		}
	}
	sort.Strings(files)
	return dedupe(files)
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
		files := fileArgs(append(append([]string{}, c.Command...), c.Args...))
		for _, f := range files {
			name := volumeName(f)
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

// volumeName makes a DNS-label volume name for a file path.
func volumeName(p string) string {
	sum := sha256.Sum256([]byte(p))
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(filepath.Base(p)))
	if len(base) > 40 {
		base = base[:40]
	}
	return "file-" + strings.Trim(base, "-") + "-" + hex.EncodeToString(sum[:4])
}

// yamlOf renders a pod as StaticPod would, without touching its files.
func yamlOf(pod *corev1.Pod) ([]byte, error) {
	pod = pod.DeepCopy()
	pod.APIVersion, pod.Kind = "v1", "Pod"
	return yaml.Marshal(pod)
}
