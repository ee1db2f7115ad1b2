package supervise_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/rke2os/rke2os/init/shared/supervise"
)

// The node stack as the init wires it: containerd (critical, ready when its
// socket exists), then the kubelet once containerd is ready; stopped in
// reverse order.
func Example() {
	dir, _ := os.MkdirTemp("", "supervise-example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "containerd.sock")

	sup := supervise.New(supervise.Reap())
	containerd := &supervise.Service{
		Name:    "containerd",
		Path:    "/bin/sh",
		Args:    []string{"-c", "sleep 0.2; touch " + sock + "; exec sleep 100"},
		LogFile: filepath.Join(dir, "containerd.log"),
		Ready: func(ctx context.Context) error {
			_, err := os.Stat(sock) // the real probe dials the socket
			return err
		},
		Critical: true,
	}
	kubelet := &supervise.Service{
		Name:    "kubelet",
		Path:    "/bin/sleep",
		Args:    []string{"100"},
		LogFile: filepath.Join(dir, "kubelet.log"),
	}
	if err := sup.Add(containerd); err != nil {
		fmt.Println(err)
	}
	if err := sup.Add(kubelet, "containerd"); err != nil {
		fmt.Println(err)
	}
	sup.Start()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sup.WaitReady(ctx, "containerd"); err != nil {
		fmt.Println(err)
	}
	fmt.Println("containerd", containerd.State())
	if err := sup.WaitReady(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("kubelet", kubelet.State())

	// The init then waits on sup.Fatal(): a containerd exit stops the stack
	// (StopAll) and either restarts it (Start) or reboots.
	if err := sup.StopAll(10 * time.Second); err != nil {
		fmt.Println(err)
	}
	fmt.Println(kubelet.State(), containerd.State())
	// Output:
	// containerd ready
	// kubelet ready
	// stopped stopped
}

// A one-shot helper run without racing PID 1's reaper; its last output line
// explains the failure.
func ExampleReaper_Run() {
	err := supervise.Reap().Run(exec.Command("/bin/sh", "-c", "echo 'mkfs.ext4: Device size reported to be zero' >&2; exit 1"))
	fmt.Println(err)
	// Output:
	// /bin/sh exited with status 1 (last output: "mkfs.ext4: Device size reported to be zero")
}
