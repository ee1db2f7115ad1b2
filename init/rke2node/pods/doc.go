// Package pods makes the static pods RKE2 runs (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kube-proxy) and writes them
// into the kubelet's manifest directory. Each pod is a pure function of its
// options, shaped as RKE2's pod template shapes it, with k3s's flags; only
// StaticPod touches the host, to mount the files the flags name and hash
// their content into the manifest.
package pods
