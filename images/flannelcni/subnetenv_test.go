package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSubnetEnv(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name    string
		in      string
		want    *subnetEnv
		wantErr string // substring of the error; "" means no error
	}{{
		name: "IPv4 as flanneld writes it",
		in:   "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
		want: &subnetEnv{
			Networks: []netip.Prefix{pfx("10.42.0.0/16")},
			Subnet:   pfx("10.42.3.0/24"), // host bits dropped for host-local
			MTU:      1450,
			IPMasq:   true,
		},
	}, {
		name: "dual stack",
		in: "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\n" +
			"FLANNEL_IPV6_NETWORK=2001:cafe:42::/56\nFLANNEL_IPV6_SUBNET=2001:cafe:42:3::1/64\n" +
			"FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
		want: &subnetEnv{
			Networks:     []netip.Prefix{pfx("10.42.0.0/16")},
			Subnet:       pfx("10.42.3.0/24"),
			IPv6Networks: []netip.Prefix{pfx("2001:cafe:42::/56")},
			IPv6Subnet:   pfx("2001:cafe:42:3::/64"),
			MTU:          1450,
		},
	}, {
		name: "IPv6 only",
		in:   "FLANNEL_IPV6_NETWORK=fd00:42::/56\nFLANNEL_IPV6_SUBNET=fd00:42:0:1::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n",
		want: &subnetEnv{
			IPv6Networks: []netip.Prefix{pfx("fd00:42::/56")},
			IPv6Subnet:   pfx("fd00:42:0:1::/64"),
			MTU:          1430,
			IPMasq:       true,
		},
	}, {
		name: "network lists, comments, blanks, CRLF, spaces, unknown keys",
		in: "# written by flanneld\r\n\r\nFLANNEL_NETWORK = 10.42.0.0/16, 10.43.0.0/16\r\n" +
			"FLANNEL_SUBNET=10.42.3.1/24\r\nFLANNEL_FUTURE_KEY=whatever\r\n  FLANNEL_MTU=1500  \r\nFLANNEL_IPMASQ=1",
		want: &subnetEnv{
			Networks: []netip.Prefix{pfx("10.42.0.0/16"), pfx("10.43.0.0/16")},
			Subnet:   pfx("10.42.3.0/24"),
			MTU:      1500,
			IPMasq:   true,
		},
	}, {
		name:    "empty file",
		in:      "",
		wantErr: "test.env: missing FLANNEL_NETWORK or FLANNEL_IPV6_NETWORK, FLANNEL_MTU, FLANNEL_IPMASQ",
	}, {
		name:    "missing MTU",
		in:      "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_IPMASQ=true\n",
		wantErr: "test.env: missing FLANNEL_MTU",
	}, {
		name:    "missing IPMASQ",
		in:      "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\n",
		wantErr: "test.env: missing FLANNEL_IPMASQ",
	}, {
		name:    "subnet without network",
		in:      "FLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
		wantErr: "test.env: missing FLANNEL_NETWORK",
	}, {
		name:    "IPv6 network without IPv6 subnet",
		in:      "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_IPV6_NETWORK=fd00:42::/56\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
		wantErr: "test.env: missing FLANNEL_IPV6_SUBNET",
	}, {
		name:    "bad line",
		in:      "FLANNEL_NETWORK=10.42.0.0/16\n\ngarbage\n",
		wantErr: `test.env line 3: want KEY=VALUE, got "garbage"`,
	}, {
		name:    "empty key",
		in:      "=10.42.0.0/16\n",
		wantErr: "test.env line 1: want KEY=VALUE",
	}, {
		name:    "bad CIDR",
		in:      "FLANNEL_NETWORK=10.42.0.0/33\n",
		wantErr: "test.env line 1: FLANNEL_NETWORK: netip.ParsePrefix",
	}, {
		name:    "bad CIDR in list",
		in:      "# x\nFLANNEL_NETWORK=10.42.0.0/16,nope\n",
		wantErr: "test.env line 2: FLANNEL_NETWORK",
	}, {
		name:    "empty CIDR",
		in:      "FLANNEL_SUBNET=\n",
		wantErr: "test.env line 1: FLANNEL_SUBNET",
	}, {
		name:    "IPv6 CIDR as IPv4 subnet",
		in:      "FLANNEL_SUBNET=fd00::1/64\n",
		wantErr: "test.env line 1: FLANNEL_SUBNET: fd00::1/64 is not an IPv4 CIDR",
	}, {
		name:    "IPv4 CIDR as IPv6 network",
		in:      "FLANNEL_IPV6_NETWORK=10.0.0.0/8\n",
		wantErr: "is not an IPv6 CIDR",
	}, {
		name:    "bad MTU",
		in:      "FLANNEL_MTU=big\n",
		wantErr: "test.env line 1: FLANNEL_MTU",
	}, {
		name:    "zero MTU",
		in:      "FLANNEL_MTU=0\n",
		wantErr: "MTU 0 out of range",
	}, {
		name:    "bad IPMASQ",
		in:      "FLANNEL_IPMASQ=maybe\n",
		wantErr: "test.env line 1: FLANNEL_IPMASQ",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSubnetEnv(strings.NewReader(tt.in), "test.env")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadSubnetEnvMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	_, err := loadSubnetEnv(path)
	if err == nil {
		t.Fatal("no error for a missing file")
	}
	for _, want := range []string{path, "flannel has not started on this node yet"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
}

func TestLoadSubnetEnvBadLineNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	if err := os.WriteFile(path, []byte("FLANNEL_MTU=1450\nFLANNEL_SUBNET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadSubnetEnv(path)
	if want := path + " line 2:"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
}

// formatSubnetEnv writes env back out as subnet.env, for round trips.
func formatSubnetEnv(env *subnetEnv) string {
	var b strings.Builder
	list := func(key string, ps []netip.Prefix) {
		if len(ps) == 0 {
			return
		}
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		fmt.Fprintf(&b, "%s=%s\n", key, strings.Join(s, ","))
	}
	one := func(key string, p netip.Prefix) {
		if p.IsValid() {
			fmt.Fprintf(&b, "%s=%s\n", key, p)
		}
	}
	list("FLANNEL_NETWORK", env.Networks)
	one("FLANNEL_SUBNET", env.Subnet)
	list("FLANNEL_IPV6_NETWORK", env.IPv6Networks)
	one("FLANNEL_IPV6_SUBNET", env.IPv6Subnet)
	fmt.Fprintf(&b, "FLANNEL_MTU=%d\nFLANNEL_IPMASQ=%t\n", env.MTU, env.IPMasq)
	return b.String()
}

// FuzzParseSubnetEnv checks that the parser never panics, that whatever it
// accepts is a usable lease (the invariants the rest of the plugin relies
// on), and that an accepted lease written back out parses the same.
func FuzzParseSubnetEnv(f *testing.F) {
	for _, seed := range []string{
		"FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
		"FLANNEL_NETWORK=10.42.0.0/16,10.43.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_IPV6_NETWORK=fd00:42::/56\nFLANNEL_IPV6_SUBNET=fd00:42:0:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
		"# c\r\n FLANNEL_IPV6_NETWORK = fd00::/48 \r\nFLANNEL_IPV6_SUBNET=fd00:0:0:1::/64\r\nFLANNEL_MTU=1280\r\nFLANNEL_IPMASQ=0\r\n",
		"FLANNEL_NETWORK=10.42.0.0/33\n",
		"garbage\n=x\nFLANNEL_MTU=-1\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		env, err := parseSubnetEnv(strings.NewReader(in), "fuzz.env")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "flannel: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if env.Subnet.IsValid() != (len(env.Networks) > 0) ||
			env.IPv6Subnet.IsValid() != (len(env.IPv6Networks) > 0) ||
			!env.Subnet.IsValid() && !env.IPv6Subnet.IsValid() {
			t.Fatalf("accepted an unusable lease: %+v", env)
		}
		for _, p := range append(append([]netip.Prefix{env.Subnet}, env.Networks...), env.IPv6Subnet) {
			if p.IsValid() && p != p.Masked() {
				t.Fatalf("prefix %v has host bits", p)
			}
		}
		if env.MTU <= 0 || env.MTU > 65535 {
			t.Fatalf("accepted MTU %d", env.MTU)
		}
		again, err := parseSubnetEnv(strings.NewReader(formatSubnetEnv(env)), "again.env")
		if err != nil {
			t.Fatalf("reparse of %q: %v", formatSubnetEnv(env), err)
		}
		if !reflect.DeepEqual(env, again) {
			t.Fatalf("round trip changed %+v to %+v", env, again)
		}
		if _, err := delegateConfig(&netConf{Name: "cbr0", CNIVersion: "1.0.0"}, env); err != nil {
			t.Fatalf("delegateConfig: %v", err)
		}
	})
}
