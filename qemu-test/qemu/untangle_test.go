package qemu

import "testing"

func TestUntangle(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		final    bool
		want     string
		used     int // -1: all of in
	}{
		{"plain lines", "[    1.000000] a\nrke2-init event=x t=1.000\n", false,
			"[    1.000000] a\nrke2-init event=x t=1.000\n", -1},
		{"a partial line waits", "rke2-init event=x t=1.000\nrke2-init ev", false,
			"rke2-init event=x t=1.000\n", 26},
		{"a partial line is kept when final", "rke2-init event=x t=1.000\nrke2-init ev", true,
			"rke2-init event=x t=1.000\nrke2-init ev", -1},
		// As CI saw it: the kernel message between the line and its newline.
		{"cut at the end", "rke2-init event=dhcp-lease t=7.340 item=\"eth0\"[    7.379680] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready\r\n\r\nrke2-init milestone=network-up t=7.356\r\n", false,
			"rke2-init event=dhcp-lease t=7.340 item=\"eth0\"\r\n[    7.379680] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready\r\nrke2-init milestone=network-up t=7.356\r\n", -1},
		{"cut in the middle", "rke2-init event=x t=1.000 a[   12.000001] eth0: up\na=b c=d\nnext\n", false,
			"rke2-init event=x t=1.000 aa=b c=d\n[   12.000001] eth0: up\nnext\n", -1},
		{"cut by two messages", "rke2-init milestone=[    2.000000] one\n[    2.000001] two\nnode-ready t=9.000\n", false,
			"rke2-init milestone=node-ready t=9.000\n[    2.000000] one\n[    2.000001] two\n", -1},
		{"the rest not there yet", "rke2-init event=x t=1.000 a[   12.000001] eth0: up\na=b", false,
			"", 0},
		{"the rest never came", "rke2-init event=x t=1.000 a[   12.000001] eth0: up\na=b", true,
			"rke2-init event=x t=1.000 aa=b\n[   12.000001] eth0: up\n", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, used := untangle([]byte(tc.in), tc.final)
			if tc.used < 0 {
				tc.used = len(tc.in)
			}
			if string(out) != tc.want || used != tc.used {
				t.Errorf("untangle(%q) = %q, %d; want %q, %d", tc.in, out, used, tc.want, tc.used)
			}
		})
	}
}
