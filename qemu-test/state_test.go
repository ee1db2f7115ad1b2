package qemutest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rke2os/rke2os/internal/disktest"
	"github.com/rke2os/rke2os/qemu-test/qemu"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// rawDisk copies the server's raw disk as a user writes it to a larger
// disk (here a sparse file of size bytes).
func rawDisk(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rke2-server.raw")
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(outDir(t), "rke2-server.raw"), p).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// statePartition is where RKE2_STATE lies in a raw disk image, in bytes.
func statePartition(t *testing.T, disk string) (start, size int64) {
	t.Helper()
	return disktest.Partition(t, disk, "RKE2_STATE")
}

// stateFile reads a file from the (powered-off) disk's state filesystem
// with e2fsprogs' debugfs; the path is inside the filesystem (/var/x is /x).
func stateFile(t *testing.T, disk, path string) string {
	t.Helper()
	start, _ := statePartition(t, disk)
	out, err := exec.Command("debugfs", "-R", "cat "+path, fmt.Sprintf("%s?offset=%d", disk, start)).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s (is e2fsprogs installed?): %v", path, err)
	}
	return string(out)
}

// stateList lists a directory of the disk's state filesystem.
func stateList(t *testing.T, disk, path string) string {
	t.Helper()
	start, _ := statePartition(t, disk)
	out, err := exec.Command("debugfs", "-R", "ls -l "+path, fmt.Sprintf("%s?offset=%d", disk, start)).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs ls %s: %v: %s", path, err, out)
	}
	return string(out)
}

// cutAt waits until reached says that what is on the console, and then
// pulls the plug: QEMU is killed with no shutdown, as a power cut does to
// a machine.
func cutAt(t *testing.T, vm *qemu.VM, what string, after time.Duration, reached func() error) {
	t.Helper()
	if err := reached(); err != nil {
		t.Fatalf("before the power cut: %v; errors: %v", err, vm.Errors())
	}
	time.Sleep(after)
	vm.Kill()
	t.Logf("power cut %v after %s", after, what)
}

// event is an event a test looks for: its name and key/values.
type event struct {
	name  string
	match map[string]string
}

// hasEvent says whether the console has an event named name with every
// key/value of match.
func hasEvent(vm *qemu.VM, name string, match map[string]string) bool {
	return countEvents(vm, name, match) > 0
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// putUntilCut puts keys into the node's etcd for d, then cuts the power in
// the middle of the writes, and returns the keys etcd acknowledged.
func (n *testNode) putUntilCut(vm *qemu.VM, d time.Duration) []string {
	t := n.t
	n.put("/rke2os/cut/warmup", "x") // etcd answers
	cli := etcdClient(t, n.ca, n.etcd)
	defer cli.Close()
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("/rke2os/cut/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cli.Put(ctx, key, key)
			cancel()
			if err != nil {
				continue
			}
			mu.Lock()
			acked = append(acked, key)
			mu.Unlock()
		}
	}()
	time.Sleep(d)
	vm.Kill() // the power goes while puts are in flight
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatalf("etcd acknowledged no put in %v", d)
	}
	t.Logf("etcd acknowledged %d puts before the power cut", len(acked))
	return acked
}

// checkKeys expects every key etcd acknowledged before a power cut.
func (n *testNode) checkKeys(keys []string) {
	var got map[string]bool
	n.etcdDo("get", func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, "/rke2os/cut/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		got = map[string]bool{}
		for _, kv := range resp.Kvs {
			got[string(kv.Key)] = true
		}
		return nil
	})
	var lost []string
	for _, k := range keys {
		if !got[k] {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		n.t.Errorf("%d of %d acknowledged keys lost in the power cut: %v", len(lost), len(keys), lost)
	}
}
