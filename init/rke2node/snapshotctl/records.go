package snapshotctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/rke2os/rke2os/init/rke2node/crds"
	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
)

// LabelStorageNode is the label of an ETCDSnapshotFile with the node
// whose disk holds the snapshot, RKE2's.
const LabelStorageNode = "etcd.rke2.cattle.io/snapshot-storage-node"

// LabelNode is the label of an ETCDSnapshotFile with the server that took
// the snapshot: an S3 copy's storage node is "s3", and each server keeps
// the records of its own uploads.
const LabelNode = "rke2os.io/snapshot-node"

// StorageS3 is the storage node of a snapshot copied to S3, RKE2's.
const StorageS3 = "s3"

// failedTTL is how long the record of a failed snapshot stays, as k3s
// keeps it.
const failedTTL = 24 * time.Hour

// Records keeps a node's ETCDSnapshotFile objects: one per snapshot file,
// and one per failed snapshot for a day. A nil Records keeps none.
type Records struct {
	Dyn dynamic.Interface
	// Kube posts the Events (ETCDSnapshotCreated, ETCDSnapshotFailed);
	// nil posts none.
	Kube kubernetes.Interface
}

// invalidName are the characters an object name cannot hold.
var invalidName = regexp.MustCompile(`[^-a-z0-9.]+`)

// ObjectName is the ETCDSnapshotFile's name of a node's snapshot file, as
// RKE2 names them: "local-" (or "s3-" for its copy in S3, storage
// StorageS3), the file's name made a DNS subdomain, and a short hash of
// storage and file that keeps two names apart.
func ObjectName(storage, file string) string {
	h := sha256.Sum256([]byte(storage + "/" + file))
	base := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(file), "-"), "-.")
	if len(base) > 200 {
		base = base[:200]
	}
	kind := "local-"
	if storage == StorageS3 {
		kind = "s3-"
	}
	return kind + base + "-" + hex.EncodeToString(h[:3])
}

func (r *Records) res() dynamic.ResourceInterface { return r.Dyn.Resource(crds.ETCDSnapshotFile) }

// Sync makes the records of the node's snapshots in storage (the node's
// own name for its disk, StorageS3 for its copies in S3) those of files:
// a missing one is made, a changed size rewritten, one whose file is gone
// deleted (the record of a failure stays its day).
func (r *Records) Sync(ctx context.Context, node, storage string, files []supervisorapi.SnapshotInfo, now time.Time) error {
	if r == nil {
		return nil
	}
	list, err := r.res().List(ctx, metav1.ListOptions{LabelSelector: LabelStorageNode + "=" + storage})
	if err != nil {
		return fmt.Errorf("list etcdsnapshotfiles: %w", err)
	}
	have := map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		// This node's: its label says so, or (on its own disk) a record
		// written before the label was.
		owner, labelled := list.Items[i].GetLabels()[LabelNode]
		if owner == node || (!labelled && storage != StorageS3) {
			have[list.Items[i].GetName()] = &list.Items[i]
		}
	}
	var errs []error
	for _, f := range files {
		name := ObjectName(storage, f.Name)
		obj, ok := have[name]
		delete(have, name)
		status := map[string]any{"readyToUse": true, "size": fmt.Sprint(f.Size), "creationTime": f.Created.UTC().Format(time.RFC3339)}
		if ok {
			if cur, _, _ := unstructured.NestedMap(obj.Object, "status"); fmt.Sprint(cur) == fmt.Sprint(status) {
				continue
			}
		}
		if err := r.put(ctx, node, storage, f.Name, f.Location, obj, status); err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			where := node
			if storage == StorageS3 {
				where = "S3 (" + f.Location + ")"
			}
			r.event(ctx, node, name, corev1.EventTypeNormal, "ETCDSnapshotCreated", fmt.Sprintf("Snapshot %s saved on %s", f.Name, where))
		}
	}
	for name, obj := range have {
		if failedAt, ok := failedTime(obj); ok && now.Sub(failedAt) < failedTTL {
			continue
		}
		if err := r.res().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete etcdsnapshotfile %s: %w", name, err))
			continue
		}
		slog.Info("etcd snapshot record deleted: its file is gone", "etcdsnapshotfile", name)
	}
	return errors.Join(errs...)
}

// failed records a snapshot that failed, with the reason, and says so in
// an Event.
func (r *Records) failed(ctx context.Context, node, storage, file, location string, at time.Time, cause error) {
	if r == nil {
		return
	}
	name := ObjectName(storage, file)
	msg := cause.Error()
	status := map[string]any{"readyToUse": false, "creationTime": at.UTC().Format(time.RFC3339),
		"error": map[string]any{"time": time.Now().UTC().Format(time.RFC3339), "message": msg}}
	if err := r.put(ctx, node, storage, file, location, nil, status); err != nil {
		slog.Warn("etcd snapshots: record the failure", "err", err)
	}
	r.event(ctx, node, name, corev1.EventTypeWarning, "ETCDSnapshotFailed", fmt.Sprintf("Snapshot %s failed on %s: %s", file, node, msg))
}

// put creates (obj nil) or updates a record, then its status.
func (r *Records) put(ctx context.Context, node, storage, file, location string, obj *unstructured.Unstructured, status map[string]any) (err error) {
	name := ObjectName(storage, file)
	if obj == nil {
		obj = &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": crds.ETCDSnapshotFile.GroupVersion().String(), "kind": "ETCDSnapshotFile",
			"metadata": map[string]any{"name": name, "labels": map[string]any{LabelStorageNode: storage, LabelNode: node}},
			"spec":     map[string]any{"snapshotName": file, "nodeName": node, "location": location},
		}}
		created, err := r.res().Create(ctx, obj, metav1.CreateOptions{FieldManager: "rke2os"})
		if apierrors.IsAlreadyExists(err) {
			created, err = r.res().Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			return fmt.Errorf("create etcdsnapshotfile %s: %w", name, err)
		}
		obj = created
	}
	if _, ok := obj.GetLabels()[LabelNode]; !ok {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelNode] = node
		obj.SetLabels(labels)
		if obj, err = r.res().Update(ctx, obj, metav1.UpdateOptions{FieldManager: "rke2os"}); err != nil {
			return fmt.Errorf("etcdsnapshotfile %s: label: %w", name, err)
		}
	}
	obj = obj.DeepCopy()
	if err := unstructured.SetNestedMap(obj.Object, status, "status"); err != nil {
		return err
	}
	if _, err := r.res().UpdateStatus(ctx, obj, metav1.UpdateOptions{FieldManager: "rke2os"}); err != nil {
		return fmt.Errorf("etcdsnapshotfile %s status: %w", name, err)
	}
	return nil
}

// failedTime is when a failed snapshot's record says it failed.
func failedTime(obj *unstructured.Unstructured) (time.Time, bool) {
	ready, found, _ := unstructured.NestedBool(obj.Object, "status", "readyToUse")
	if !found || ready {
		return time.Time{}, false
	}
	s, _, _ := unstructured.NestedString(obj.Object, "status", "error", "time")
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// event posts an Event about a record, as RKE2's supervisor does.
func (r *Records) event(ctx context.Context, node, object, kind, reason, msg string) {
	if r == nil || r.Kube == nil {
		return
	}
	now := metav1.Now()
	ev := &corev1.Event{
		// Named as client-go's recorder names events.
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", object, now.UnixNano()), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{APIVersion: crds.ETCDSnapshotFile.GroupVersion().String(), Kind: "ETCDSnapshotFile", Name: object},
		Reason:         reason, Message: msg, Type: kind,
		Source:         corev1.EventSource{Component: "rke2-supervisor", Host: node},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := r.Kube.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		slog.Warn("etcd snapshots: event", "reason", reason, "err", err)
	}
}
