package conformance

import (
	"regexp"
	"strings"
)

// Default is the set make conformance runs when CONFORMANCE_FOCUS is not
// given: of every SIG's [Conformance] tests, those that fit an hour under
// TCG on two cores, one server (issue 25); those that need two nodes are
// TwoNodes'. Each is the test's full name as
// e2e.test v1.34.4 spells it (testdata/conformance-v1.34.4.txt holds them
// all); a test the default leaves out runs with CONFORMANCE_FOCUS.
var Default = []string{
	// Pods and containers: lifecycle, probes, init containers, the
	// downward API, ConfigMap, Secret, projected, emptyDir and subPath
	// volumes, sysctls, /etc/hosts.
	"[sig-node] Pods should get a host IP [NodeConformance] [Conformance]",
	"[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
	"[sig-node] Pods should support remote command execution over websockets [NodeConformance] [Conformance]",
	`[sig-node] Probing container should be restarted with a exec "cat /tmp/health" liveness probe [NodeConformance] [Conformance]`,
	"[sig-node] Probing container should be restarted with a /healthz http liveness probe [NodeConformance] [Conformance]",
	"[sig-node] InitContainer [NodeConformance] should invoke init containers on a RestartNever pod [Conformance]",
	"[sig-node] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart exec hook properly [NodeConformance] [Conformance]",
	"[sig-node] Container Runtime blackbox test on terminated container should report termination message from log output if TerminationMessagePolicy FallbackToLogsOnError is set [NodeConformance] [Conformance]",
	"[sig-node] Kubelet when scheduling a busybox command in a pod should print the output to logs [NodeConformance] [Conformance]",
	"[sig-node] Security Context When creating a container with runAsUser should run the container with uid 65534 [LinuxOnly] [NodeConformance] [Conformance]",
	"[sig-node] Variable Expansion should allow composing env vars into new env vars [NodeConformance] [Conformance]",
	"[sig-node] Downward API should provide pod name, namespace and IP address as env vars [NodeConformance] [Conformance]",
	"[sig-node] ConfigMap should be consumable via environment variable [NodeConformance] [Conformance]",
	"[sig-storage] Downward API volume should provide podname only [NodeConformance] [Conformance]",
	"[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]",
	"[sig-storage] Secrets should be consumable from pods in volume [NodeConformance] [Conformance]",
	"[sig-storage] Projected combined should project all components that make up the projection API [Projection] [NodeConformance] [Conformance]",
	"[sig-storage] EmptyDir volumes should support (root,0644,tmpfs) [LinuxOnly] [NodeConformance] [Conformance]",
	"[sig-storage] EmptyDir volumes should support (non-root,0666,default) [LinuxOnly] [NodeConformance] [Conformance]",
	"[sig-node] Pods should contain environment variables for services [NodeConformance] [Conformance]",
	"[sig-node] Secrets should be consumable from pods in env vars [NodeConformance] [Conformance]",
	"[sig-node] Containers should use the image defaults if command and args are blank [NodeConformance] [Conformance]",
	"[sig-node] Kubelet when scheduling a read only busybox container should not write to root filesystem [LinuxOnly] [NodeConformance] [Conformance]",
	"[sig-node] KubeletManagedEtcHosts should test kubelet managed /etc/hosts file [NodeConformance] [Conformance]",
	"[sig-node] Sysctls [LinuxOnly] [NodeConformance] should support sysctls [MinimumKubeletVersion:1.21] [Environment:NotInUserNS] [Conformance]",
	"[sig-node] Sysctls [LinuxOnly] [NodeConformance] should reject invalid sysctls [MinimumKubeletVersion:1.21] [Conformance]",
	"[sig-node] RuntimeClass should support RuntimeClasses API operations [Conformance]",
	"[sig-node] Lease lease API should be available [Conformance]",
	"[sig-storage] Projected configMap should be consumable from pods in volume [NodeConformance] [Conformance]",
	"[sig-storage] Projected secret should be consumable from pods in volume [NodeConformance] [Conformance]",
	"[sig-storage] Subpath Atomic writer volumes should support subpaths with configmap pod [Conformance]",
	"[sig-storage] EmptyDir volumes pod should support shared volumes between containers [Conformance]",

	// Networking: pod-to-pod and node-to-pod, Services, DNS, EndpointSlices.
	"[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: http [NodeConformance] [Conformance]",
	"[sig-network] Networking Granular Checks: Pods should function for node-pod communication: udp [LinuxOnly] [NodeConformance] [Conformance]",
	"[sig-network] Services should serve a basic endpoint from pods [Conformance]",
	"[sig-network] Services should be able to create a functioning NodePort service [Conformance]",
	"[sig-network] Services should be able to change the type from ExternalName to ClusterIP [Conformance]",
	"[sig-network] DNS should provide DNS for services [Conformance]",
	"[sig-network] DNS should provide DNS for pods for Hostname [Conformance]",
	"[sig-network] EndpointSlice should have Endpoints and EndpointSlices pointing to API Server [Conformance]",
	"[sig-network] EndpointSlice should create Endpoints and EndpointSlices for Pods matching a Service [Conformance]",
	"[sig-network] HostPort validates that there is no conflict between pods with same hostPort but different hostIP and protocol [LinuxOnly] [Conformance]",
	"[sig-network] Services should provide secure master service [Conformance]",
	"[sig-network] Services should find a service from listing all namespaces [Conformance]",

	// Apps: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
	// CronJobs, disruption budgets.
	"[sig-apps] Deployment RollingUpdateDeployment should delete old pods and create new ones [Conformance]",
	"[sig-apps] ReplicaSet should serve a basic image on each replica with a public image [Conformance]",
	"[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] should list, patch and delete a collection of StatefulSets [Conformance]",
	"[sig-apps] Daemon set [Serial] should run and stop simple daemon [Conformance]",
	"[sig-apps] Job should run a job to completion when tasks sometimes fail and are locally restarted [Conformance]",
	"[sig-apps] CronJob should support CronJob API operations [Conformance]",
	"[sig-apps] DisruptionController should create a PodDisruptionBudget [Conformance]",
	"[sig-apps] Deployment deployment should delete old replica sets [Conformance]",
	"[sig-apps] ReplicationController should serve a basic image on each replica with a public image [Conformance]",
	"[sig-apps] Job should create pods for an Indexed job with completion indexes and specified hostname [Conformance]",

	// API machinery: CRDs, webhooks, garbage collection,
	// watch, field validation, resource quota.
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should be able to deny pod and configmap creation [Conformance]",
	"[sig-api-machinery] Garbage collector should delete pods created by rc when not orphaning [Conformance]",
	"[sig-api-machinery] Watchers should observe add, update, and delete watch notifications on configmaps [Conformance]",
	"[sig-api-machinery] FieldValidation should detect unknown and duplicate fields of a typed object [Conformance]",
	"[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a pod. [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate configmap [Conformance]",
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should validate against a Deployment [Conformance]",
	"[sig-api-machinery] Namespaces [Serial] should patch a Namespace [Conformance]",

	// Auth: service accounts, tokens, subject reviews (RBAC's answers).
	"[sig-auth] ServiceAccounts should mount an API token into pods [Conformance]",
	"[sig-auth] ServiceAccounts should create a serviceAccountToken and ensure a successful TokenReview [Conformance]",
	"[sig-auth] SubjectReview should support SubjectReview API operations [Conformance]",
	"[sig-auth] ServiceAccounts ServiceAccountIssuerDiscovery should support OIDC discovery of service account issuer [Conformance]",

	// Scheduling, instrumentation, the CLI.
	"[sig-scheduling] SchedulerPredicates [Serial] validates that NodeSelector is respected if matching [Conformance]",
	"[sig-scheduling] LimitRange should create a LimitRange with defaults and ensure pod has those defaults applied. [Conformance]",
	"[sig-scheduling] SchedulerPreemption [Serial] PriorityClass endpoints verify PriorityClass endpoints can be operated with different HTTP methods [Conformance]",
	"[sig-instrumentation] Events API should ensure that an event can be fetched, patched, deleted, and listed [Conformance]",
	"[sig-cli] Kubectl client Kubectl api-versions should check if v1 is in available api versions [Conformance]",
	"[sig-cli] Kubectl client Kubectl run pod should create a pod from an image when restart is Never [Conformance]",
}

// TwoNodes is the set make conformance runs on a server and an agent
// (CONFORMANCE_NODES=2) when CONFORMANCE_FOCUS is not given: the
// conformance tests that need two schedulable nodes, and pod networking
// checked between pods and nodes across the two (flannel's VXLAN between
// the machines).
var TwoNodes = []string{
	"[sig-architecture] Conformance Tests should have at least two untainted nodes [Conformance]",
	"[sig-apps] Daemon set [Serial] should rollback without unnecessary restarts [Conformance]",
	"[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: udp [NodeConformance] [Conformance]",
	"[sig-network] Networking Granular Checks: Pods should function for node-pod communication: http [LinuxOnly] [NodeConformance] [Conformance]",
}

// LeftOut are the tests the default set would hold but does not, each with
// the reason (not this OS's to fix): they run with CONFORMANCE_FOCUS.
var LeftOut = map[string]string{
	"[sig-api-machinery] Aggregator Should be able to support the 1.17 Sample API Server using the current Aggregator [Conformance]": "the sample-apiserver's readiness probe (every second, 1 s timeout, 3 failures) " +
		"misses under TCG: the pod turns unready mid-test and the aggregator answers 503 (seen 2026-12-07, after its first create, list and delete passed)",
}

// Smoke is the few tests CI runs on the cluster test's boot: API
// machinery and auth that run no image of their own, a minute or two.
var Smoke = []string{
	"[sig-api-machinery] server version should find the server version [Conformance]",
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
	"[sig-api-machinery] Watchers should observe add, update, and delete watch notifications on configmaps [Conformance]",
	"[sig-auth] SubjectReview should support SubjectReview API operations [Conformance]",
	"[sig-network] EndpointSlice should have Endpoints and EndpointSlices pointing to API Server [Conformance]",
}

// Focus is ginkgo's focus for exactly the tests named: each name, its
// regexp metacharacters quoted, to the end of the text ginkgo matches
// (the suite's description, a space, the spec's text).
func Focus(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	return " (" + strings.Join(q, "|") + ")$"
}
