package pods

// PodSecurityConfig is the admission configuration RKE2 writes to
// /etc/rancher/rke2/rke2-pss.yaml when no profile is set and the user names
// no pod-security-admission-config-file: Pod Security enforces
// "privileged" everywhere, so nothing is refused until a namespace asks
// for more with its pod-security.kubernetes.io labels. (The cis profile's
// "restricted" variant is not offered: this system has no profiles.)
func PodSecurityConfig() []byte {
	return []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1beta1
    kind: PodSecurityConfiguration
    defaults:
      enforce: "privileged"
      enforce-version: "latest"
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces: []`)
}
