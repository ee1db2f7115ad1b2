package qemutest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rke2os/rke2os/init/rke2node/upgradeapi"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// upgradeArtifact builds another server image of the same tree with the
// test's secrets and OS version version, and returns its upgrade
// artifact's path and sha256.
func upgradeArtifact(t *testing.T, secrets, version string, extra ...string) (path, sum string) {
	t.Helper()
	return roleArtifact(t, "server", secrets, version, extra...)
}

// roleArtifact is upgradeArtifact for either role.
func roleArtifact(t *testing.T, role, secrets, version string, extra ...string) (path, sum string) {
	t.Helper()
	raw := roleImage(t, role, append([]string{"--secrets", secrets, "--os-version", version}, extra...)...)
	path = strings.TrimSuffix(raw, ".raw") + ".upgrade"
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the upgrade artifact: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

// serveFile serves one file over HTTP on the host, where the guest reaches
// it through QEMU's gateway (10.0.2.2); it counts the downloads.
func serveFile(t *testing.T, path string) (url string, downloads *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downloads = new(atomic.Int32)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downloads.Add(1)
		http.ServeFile(w, r, path)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("http://10.0.2.2:%d/%s", l.Addr().(*net.TCPAddr).Port, filepath.Base(path)), downloads
}

var planResource = schema.GroupVersionResource{Group: upgradeapi.Group, Version: upgradeapi.Version, Resource: upgradeapi.Resource}

// createPlan asks for an upgrade of every server to the artifact at url.
func createPlan(t *testing.T, rc *rest.Config, name, url, sum string) {
	t.Helper()
	createPlanSpec(t, rc, name, upgradeapi.PlanSpec{Server: &upgradeapi.Artifact{URL: url, SHA256: sum}})
}

// createPlanSpec creates the UpgradePlan name with spec.
func createPlanSpec(t *testing.T, rc *rest.Config, name string, spec upgradeapi.PlanSpec) {
	t.Helper()
	plan := upgradeapi.UpgradePlan{
		TypeMeta:   metav1.TypeMeta{APIVersion: upgradeapi.Group + "/" + upgradeapi.Version, Kind: upgradeapi.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&plan)
	if err != nil {
		t.Fatal(err)
	}
	dc := dynamic.NewForConfigOrDie(rc)
	poll(t, "the UpgradePlan created (its CRD installed)", 5*time.Minute, func() error {
		_, err := dc.Resource(planResource).Create(context.Background(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
		return err
	})
}

// deletePlan deletes an UpgradePlan and waits until it is gone: the
// controller's finalizer holds it until no node is at work on it.
func deletePlan(t *testing.T, rc *rest.Config, name string) {
	t.Helper()
	plans := dynamic.NewForConfigOrDie(rc).Resource(planResource)
	if err := plans.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the UpgradePlan %s: %v", name, err)
	}
	poll(t, "the UpgradePlan "+name+" gone", 2*time.Minute, func() error {
		u, err := plans.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still there, finalizers %v", u.GetFinalizers())
	})
}

// planStatus reads an UpgradePlan's status.
func planStatus(rc *rest.Config, name string) (upgradeapi.PlanStatus, error) {
	u, err := dynamic.NewForConfigOrDie(rc).Resource(planResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return upgradeapi.PlanStatus{}, err
	}
	var p upgradeapi.UpgradePlan
	b, err := json.Marshal(u.Object)
	if err != nil {
		return upgradeapi.PlanStatus{}, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return upgradeapi.PlanStatus{}, err
	}
	return p.Status, nil
}

// waitPlan waits for the plan to reach phase, and returns its status.
func waitPlan(t *testing.T, rc *rest.Config, name, phase string) upgradeapi.PlanStatus {
	t.Helper()
	var st upgradeapi.PlanStatus
	poll(t, fmt.Sprintf("the UpgradePlan %s %s", name, phase), 15*time.Minute, func() error {
		var err error
		if st, err = planStatus(rc, name); err != nil {
			return err
		}
		if st.Phase != phase {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	return st
}

// waitUncordoned waits for node1 to be schedulable again.
func waitUncordoned(t *testing.T, kc kubernetes.Interface) {
	t.Helper()
	poll(t, "node1 uncordoned", 5*time.Minute, func() error {
		n, err := kc.CoreV1().Nodes().Get(context.Background(), "node1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Spec.Unschedulable {
			return fmt.Errorf("still cordoned")
		}
		return nil
	})
}
