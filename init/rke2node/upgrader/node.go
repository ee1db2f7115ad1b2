package upgrader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/slots"
	"github.com/rke2os/rke2os/internal/backoff"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// watch reads the node's Node, carries out its request if it needs to,
// and watches it for the next change, reading it again at least every
// Resync and after any error (with backoff): a missed event costs at most
// a Resync. It gets and watches the Node by name only, as the Node
// authorizer lets a node do.
func (u *upgrader) watch(ctx context.Context) {
	b := &backoff.Backoff{Initial: u.Retry, Max: 30 * u.Retry}
	for ctx.Err() == nil && !u.rebooting {
		n, err := u.Client.CoreV1().Nodes().Get(ctx, u.NodeName, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() == nil {
				slog.Warn("upgrader: reading the Node", "node", u.NodeName, "err", err)
			}
			sleep(ctx, b)
			continue
		}
		if u.consider(ctx, n) {
			b.Reset()
			continue // the Node changed: read it again
		}
		if err := u.watchFrom(ctx, n.ResourceVersion); err != nil {
			if ctx.Err() == nil {
				slog.Warn("upgrader: watching the Node", "node", u.NodeName, "err", err)
			}
			sleep(ctx, b)
			continue
		}
		b.Reset()
	}
	if u.rebooting {
		<-ctx.Done()
	}
}

// watchFrom watches the Node from version rv until it changes in a way
// that the upgrader acted on (nil), the watch ends (nil: read it again)
// or fails.
func (u *upgrader) watchFrom(ctx context.Context, rv string) error {
	timeout := int64(u.Resync / time.Second)
	if timeout < 1 {
		timeout = 1
	}
	// The watch ends with the server's timeout, or a little after it;
	// what it starts does not: an upgrade runs in the upgrader's own
	// context (a download longer than the watch was cut off, said as a
	// shutdown, and started over at the next watch, for ever).
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, u.Resync+min(u.Resync, 10*time.Second))
	defer cancel()
	w, err := u.Client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", u.NodeName).String(),
		ResourceVersion: rv, TimeoutSeconds: &timeout, AllowWatchBookmarks: true,
	})
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			switch ev.Type {
			case watch.Error:
				return apierrors.FromObject(ev.Object)
			case watch.Added, watch.Modified:
				n, ok := ev.Object.(*corev1.Node)
				if !ok || n.Name != u.NodeName {
					continue
				}
				if u.consider(parent, n) {
					return nil
				}
			}
		}
	}
}

// consider carries out the Node's request unless it is answered already
// (done, failed or rolled back), or is the one whose trial is under way;
// it reports whether it did anything.
func (u *upgrader) consider(ctx context.Context, n *corev1.Node) bool {
	if u.rebooting {
		return false
	}
	raw, ok := n.Annotations[upgradeapi.RequestKey]
	if !ok {
		return false
	}
	req, err := ParseRequest(raw)
	if err != nil && !errors.Is(err, ErrRequest) {
		if raw != u.badReq {
			u.badReq = raw
			slog.Error("upgrader: an upgrade request this node cannot read; waiting for another", "err", err)
		}
		return false
	}
	st, hasSt := parseStatus(n.Annotations[upgradeapi.StatusKey])
	if hasSt && st.For(req) && final(st.Phase) {
		return false
	}
	if u.pending != nil && u.pending.Request == req {
		return false
	}
	if err != nil {
		u.fail(ctx, req, err.Error())
		return true
	}
	if hasSt && st.For(req) && st.Phase != "" {
		// Carried out synchronously, a request is answered finally or
		// rebooted for within one run: a phase of it said before this
		// one was cut short (the power, or a restart of the node).
		slog.Warn("upgrader: an upgrade of this request was cut short while "+st.Phase+" (the power was cut, or the node restarted); it is carried out again, from the download",
			"plan", req.Plan, "generation", req.Generation)
	}
	u.carryOut(ctx, req)
	return true
}

// report says phase on the Node for req, in StatusKey: a merge patch of
// that one annotation, which NodeRestriction lets a node make on its own
// Node. A final phase is retried until it is said (or ctx ends: false);
// another is tried a few times, then the upgrade goes on without it.
func (u *upgrader) report(ctx context.Context, req upgradeapi.Request, phase, reason string, slot slots.Slot) bool {
	st := upgradeapi.NodeStatus{Plan: req.Plan, Generation: req.Generation, SHA256: req.SHA256,
		Phase: phase, Reason: reason, Slot: string(slot), Time: metav1.NewTime(time.Now().UTC().Truncate(time.Second))}
	val, err := json.Marshal(st)
	if err != nil {
		slog.Error("upgrader: status", "err", err)
		return false
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{upgradeapi.StatusKey: string(val)}}})
	if err != nil {
		slog.Error("upgrader: status", "err", err)
		return false
	}
	console.Event(console.EventUpgrade, "phase", phase, "plan", req.Plan, "generation", req.Generation, "slot", string(slot), "reason", reason)
	b := &backoff.Backoff{Initial: u.Retry, Max: 30 * u.Retry}
	for try := 1; ; try++ {
		_, err := u.Client.CoreV1().Nodes().Patch(ctx, u.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		slog.Warn("upgrader: saying the phase on the Node", "phase", phase, "try", try, "err", err)
		if !final(phase) && try >= 3 {
			return false
		}
		if !sleep(ctx, b) {
			return false
		}
	}
}

// fail says that req failed, before any slot was armed.
func (u *upgrader) fail(ctx context.Context, req upgradeapi.Request, reason string) {
	slog.Error("upgrade failed; the node stays on its slot", "plan", req.Plan, "reason", reason)
	u.report(ctx, req, upgradeapi.PhaseFailed, reason, "")
}

// event records an Event about the Node in the default namespace, as the
// kubelet records its Node's (kubectl describe node shows them). A node
// may create Events (its RBAC rules); a failure is logged and the upgrade
// goes on.
func (u *upgrader) event(ctx context.Context, typ, reason, msg string) {
	now := metav1.NewTime(time.Now())
	suffix := make([]byte, 8)
	_, _ = rand.Read(suffix)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%s", u.NodeName, hex.EncodeToString(suffix)), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: u.NodeName,
			UID: types.UID(u.NodeName)}, // what the kubelet and kubectl describe use
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: "rke2os-upgrader", Host: u.NodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "rke2os.io/upgrader", ReportingInstance: u.NodeName,
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := u.Client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		slog.Warn("upgrader: recording an Event on the Node", "reason", reason, "err", err)
	}
}
