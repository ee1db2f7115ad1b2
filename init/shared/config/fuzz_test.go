package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// seedDocs are the documents every config fuzz test starts from: the test
// data and the example configs, plus a few tricky ones.
func seedDocs(f *testing.F) [][]byte {
	docs := [][]byte{
		[]byte(""),
		[]byte("#cloud-config\nhostname: node-1\nrole: server\n"),
		[]byte("a: &a [*a]\n"),
		[]byte("base: &b {hostname: a}\n<<: *b\n"),
		[]byte("rke2: {cni: 'multus,canal', tls-san: [*.example.com]}\n"),
		[]byte("write_files:\n- {path: /a, encoding: gz+b64, content: H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==}\n"),
		[]byte("network: {interfaces: [{mac: '52:54:00:12:34:56', routes: [{to: ::/0, via: 'fe80::1', metric: 0x10}]}]}\n"),
		[]byte("registries: {mirrors: {'*': {rewrite: {'^(.*)$': x/$1}}}}\n"),
		[]byte("ntp: {enabled: yes, servers: [10.0.0.1, 'ntp.example.com:1123', '[fd00::1]:123', 'fd00::2'], pools: [pool.ntp.org]}\n"),
		[]byte("---\n...\n---\n"),
		[]byte("hostname: \"\\x00\"\n"),
		[]byte("install: {disk: {min_size: 8G, model: 'QEMU*', serial: 'a?[bc]'}, wipe: yes, after: poweroff}\n"),
		[]byte("install: {device: /dev/vda}\nwrite_files: [{path: /a, content: !!binary /w==}]\n"),
	}
	for _, glob := range []string{"testdata/*.yaml", "../../../configs/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				docs = append(docs, b)
			}
		}
	}
	return docs
}

// checkErrors checks that every problem in err is a positioned *Error from
// source.
func checkErrors(t *testing.T, source string, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			checkErrors(t, source, errors.Join(j.Unwrap()...))
			continue
		}
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %q (%T) is not a *config.Error", e, e)
		}
		if !strings.HasPrefix(ce.Source, source) {
			t.Fatalf("error %q names source %q, want %q", e, ce.Source, source)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, d := range seedDocs(f) {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config with an error")
			}
			checkErrors(t, "fuzz.yaml", err)
			return
		}
		// Whatever parses must be usable: every file decodes, every mode
		// and owner resolves, both files render and read back.
		for _, wf := range c.WriteFiles {
			if _, err := wf.Decode(); err != nil {
				t.Fatalf("parsed entry does not decode: %v", err)
			}
			if _, err := wf.Mode(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := wf.OwnerIDs(); err != nil {
				t.Fatal(err)
			}
		}
		rke2, err := c.RKE2ConfigYAML()
		if err != nil {
			t.Fatalf("RKE2ConfigYAML: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(rke2, &m); err != nil {
			t.Fatalf("rendered config.yaml does not parse: %v\n%s", err, rke2)
		}
		if len(m) != len(c.RKE2) {
			t.Fatalf("rendered config.yaml has %d keys, want %d:\n%s", len(m), len(c.RKE2), rke2)
		}
		// The rendered file is itself a valid rke2 section.
		if _, err := Parse("rendered", append([]byte("rke2:\n"), indent(rke2)...)); err != nil {
			t.Fatalf("rendered config.yaml does not parse back: %v\n%s", err, rke2)
		}
		reg, err := c.RegistriesYAML()
		if err != nil {
			t.Fatalf("RegistriesYAML: %v", err)
		}
		if _, err := Parse("rendered", append([]byte("registries:\n"), indent(reg)...)); err != nil {
			t.Fatalf("rendered registries.yaml does not parse back: %v\n%s", err, reg)
		}
		// Every NTP server is a host and a port the time client can dial.
		for _, s := range append(slices.Clone(c.NTP.Servers), c.NTP.Pools...) {
			hp := s
			if _, err := netip.ParseAddr(s); err == nil || !strings.ContainsAny(s, ":[]") {
				hp = net.JoinHostPort(s, "123")
			}
			host, port, err := net.SplitHostPort(hp)
			if err != nil || !isHost(host) {
				t.Fatalf("ntp server %q: host %q, %v", s, host, err)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("ntp server %q: port %q", s, port)
			}
		}
		// The whole config renders and reads back as itself: what an
		// install carries over to the disk.
		whole, err := c.YAML("")
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		again, err := Parse("rendered", whole)
		if err != nil {
			t.Fatalf("the rendered config does not parse back: %v\n%s", err, whole)
		}
		if twice, err := again.YAML(""); err != nil || !bytes.Equal(twice, whole) {
			t.Fatalf("the rendered config reads back as another: %v\n%s\n---\n%s", err, whole, twice)
		}
		if (c.Install == nil) != (again.Install == nil) || c.Install != nil && c.Install.AfterAction() != again.Install.AfterAction() {
			t.Fatalf("install %+v reads back as %+v", c.Install, again.Install)
		}
		_ = Merge(c, c).Validate(RoleServer)
	})
}

// indent indents every line of b by two spaces, to nest a rendered file
// under a key.
func indent(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return []byte(strings.Join(lines, ""))
}

// FuzzParseRegistries checks standalone registries.yaml files: errors are
// positioned, and what parses renders and reads back the same.
func FuzzParseRegistries(f *testing.F) {
	for _, d := range seedDocs(f) {
		f.Add(d)
	}
	if b, err := os.ReadFile("testdata/registries.golden.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("mirrors:\n  docker.io:\n    endpoint: [\"https://m:5000\"]\n    rewrite:\n      \"^rancher/(.*)\": \"x/$1\"\nconfigs:\n  m:5000:\n    auth: {username: u, password: p}\n"))
	f.Add([]byte("configs: {'[fd00::1]:5000': {auth: {auth: dTpw}, tls: {insecure_skip_verify: yes}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRegistries("fuzz.yaml", data)
		if err != nil {
			if r != nil {
				t.Fatal("ParseRegistries returned registries with an error")
			}
			checkErrors(t, "fuzz.yaml", err)
			return
		}
		out, err := (&Config{Registries: *r}).RegistriesYAML()
		if err != nil {
			t.Fatalf("RegistriesYAML: %v", err)
		}
		again, err := ParseRegistries("rendered", out)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("rendered registries.yaml reads back as %+v, %v; want %+v\n%s", again, err, r, out)
		}
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("BOOT_IMAGE=/vmlinuz console=ttyS0 quiet")
	f.Add(`a="b c" "d=e f" rke2.config=`)
	f.Add("rke2.config=!!! rke2.config")
	for _, d := range seedDocs(f) {
		f.Add("console=ttyS0 rke2.config=" + base64.StdEncoding.EncodeToString(d) + " quiet")
		f.Add(`rke2.config="` + base64.RawURLEncoding.EncodeToString(d) + `"`)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		c, err := ParseCmdline(cmdline)
		if err != nil {
			if c != nil {
				t.Fatal("ParseCmdline returned a config with an error")
			}
			checkErrors(t, CmdlineSource, err)
			return
		}
		if c == nil && strings.Contains(cmdline, CmdlineKey+"=") {
			for _, p := range SplitCmdline(cmdline) {
				if strings.HasPrefix(p, CmdlineKey+"=") {
					t.Fatalf("%q has %s= but gave no config", cmdline, CmdlineKey)
				}
			}
		}
		for _, p := range SplitCmdline(cmdline) {
			if p == "" {
				// A lone pair of quotes is an empty parameter; anything
				// else empty is a splitting bug.
				if !strings.Contains(cmdline, `""`) && !strings.Contains(cmdline, `"`) {
					t.Fatalf("empty parameter from %q", cmdline)
				}
			}
		}
	})
}

func FuzzParseMetaData(f *testing.F) {
	f.Add([]byte("instance-id: iid-1\nlocal-hostname: node-1.example.com\n"))
	f.Add([]byte(`{"instance-id": "i-1", "local-hostname": "node-8", "public-keys": {"a": "b"}}`))
	f.Add([]byte("local-hostname: [a]\n"))
	f.Add([]byte("local-hostname: a..b\n"))
	f.Add([]byte("- x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ParseMetaData(MetaDataSource, data)
		if err != nil {
			if md != nil {
				t.Fatal("ParseMetaData returned meta-data with an error")
			}
			checkErrors(t, MetaDataSource, err)
			return
		}
		if h := md.Hostname(); h != "" && checkHostname(h) != nil {
			t.Fatalf("meta-data gives an invalid host name %q", h)
		}
		if c, err := ParseNoCloud(nil, data); err != nil || c.Hostname != md.Hostname() {
			t.Fatalf("ParseNoCloud = %+v, %v; want host name %q", c, err, md.Hostname())
		}
	})
}
