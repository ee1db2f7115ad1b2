// Command hello-init is the boot floor of the benchmarks: a static PID 1
// that prints one line and powers off, booted on the same kernel as rke2-init.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	fmt.Fprintln(os.Stdout, "hello-init started")
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
