package network

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestResolvConf(t *testing.T) {
	const header = "# Written by rke2-init from the node config (network.dns) and DHCP leases.\n"
	tests := []struct {
		name    string
		servers [][]netip.Addr
		search  [][]string
		want    string
		dropped []netip.Addr
		empty   bool
	}{{
		name:    "config only",
		servers: [][]netip.Addr{addrs("192.168.122.1")},
		search:  [][]string{{"cluster.example.com"}},
		want:    header + "nameserver 192.168.122.1\nsearch cluster.example.com\n",
	}, {
		name:    "config first, then leases, without duplicates",
		servers: [][]netip.Addr{addrs("10.0.0.53"), addrs("10.0.2.3", "10.0.0.53"), addrs("10.0.2.3")},
		search:  [][]string{{"cfg.example"}, {"lease.example", "CFG.example."}},
		want:    header + "nameserver 10.0.0.53\nnameserver 10.0.2.3\nsearch cfg.example lease.example\n",
	}, {
		name:    "IPv6 resolver",
		servers: [][]netip.Addr{addrs("2001:db8::53", "10.0.0.53")},
		want:    header + "nameserver 2001:db8::53\nnameserver 10.0.0.53\n",
	}, {
		name:    "at most three servers",
		servers: [][]netip.Addr{addrs("10.0.0.1", "10.0.0.2"), addrs("10.0.0.3", "10.0.0.4", "10.0.0.5")},
		want:    header + "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
		dropped: addrs("10.0.0.4", "10.0.0.5"),
	}, {
		name:   "search only",
		search: [][]string{nil, {"a.example", "b.example"}},
		want:   header + "search a.example b.example\n",
	}, {
		name:    "nothing",
		servers: [][]netip.Addr{nil, nil},
		search:  [][]string{nil, {""}},
		want:    header,
		empty:   true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mergeDNS(tt.servers, tt.search)
			if got := string(r.render()); got != tt.want {
				t.Errorf("render:\n%s\nwant:\n%s", got, tt.want)
			}
			if !reflect.DeepEqual(r.Dropped, tt.dropped) {
				t.Errorf("dropped %v, want %v", r.Dropped, tt.dropped)
			}
			if r.empty() != tt.empty {
				t.Errorf("empty() = %v, want %v", r.empty(), tt.empty)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "resolv.conf")
	for _, content := range []string{"nameserver 10.0.0.1\n", "nameserver 10.0.0.2\n"} {
		if err := writeFileAtomic(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("files in %s: %v, want resolv.conf alone", filepath.Dir(path), entries)
	}
	// A directory in the way is an error that names the path.
	if err := writeFileAtomic(filepath.Dir(path), []byte("x"), 0o644); err == nil {
		t.Errorf("replacing a directory: no error")
	}
}
