// Package launch is PID 1's launcher of the node's runtime: it writes
// containerd's and the kubelet's configuration exactly where RKE2 puts
// them (see package layout) and runs both as supervised services. The
// control plane's static pods are rke2-node's (package rke2node).
package launch
