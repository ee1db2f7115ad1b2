package console

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEventLine(t *testing.T) {
	for _, tc := range []struct {
		name, event string
		t           float64
		kv          []any
		want        string
	}{
		{"no keys", "maintenance", 3.25, nil, `rke2-init event=maintenance t=3.250`},
		{"bare values, in order", "dhcp-lease", 12.5, []any{"iface", "eth0", "address", "10.0.2.15/24"},
			`rke2-init event=dhcp-lease t=12.500 iface=eth0 address=10.0.2.15/24`},
		{"space", "dhcp-lease", 1, []any{"item", "network.interfaces[0] (name eth0)"},
			`rke2-init event=dhcp-lease t=1.000 item="network.interfaces[0] (name eth0)"`},
		{"quotes", "x", 1, []any{"reason", `the node name "agent1"`}, `rke2-init event=x t=1.000 reason="the node name \"agent1\""`},
		{"newline and tab", "x", 1, []any{"err", "a\nb\tc"}, `rke2-init event=x t=1.000 err="a\nb\tc"`},
		{"carriage return", "x", 1, []any{"err", "a\r"}, `rke2-init event=x t=1.000 err="a\r"`},
		{"equals sign", "x", 1, []any{"request", "POST /debug/signal?service=kubelet"}, `rke2-init event=x t=1.000 request="POST /debug/signal?service=kubelet"`},
		{"empty", "x", 1, []any{"debug", ""}, `rke2-init event=x t=1.000 debug=""`},
		{"backslash stays bare", "x", 1, []any{"p", `a\b`}, `rke2-init event=x t=1.000 p=a\b`},
		{"unicode stays bare", "x", 1, []any{"p", "é"}, `rke2-init event=x t=1.000 p=é`},
		{"values as fmt.Sprint", "x", 1, []any{"stepped", true, "offset", 90 * time.Second, "mib", 8192, "err", errors.New("no such file")},
			`rke2-init event=x t=1.000 stepped=true offset=1m30s mib=8192 err="no such file"`},
		{"a key without value", "x", 1, []any{"a", 1, "b"}, `rke2-init event=x t=1.000 a=1 !BADKEY=b`},
		{"a key that is no string", "x", 1, []any{7, "v"}, `rke2-init event=x t=1.000 !BADKEY=7 !BADKEY=v`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EventLine(tc.event, tc.t, tc.kv...); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Event writes the line to the console and to the kernel log (at debug
// level), with the time since kernel start.
func TestEventWrites(t *testing.T) {
	var con, km bytes.Buffer
	mu.Lock()
	oldOut, oldKmsg := out, kmsg
	out, kmsg = &con, &km
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		out, kmsg = oldOut, oldKmsg
		mu.Unlock()
	})
	Event(EventStateReady, "device", "/dev/vda5", "formatted", false)
	m := regexp.MustCompile(`^rke2-init event=state-ready t=([0-9]+\.[0-9]{3}) device=/dev/vda5 formatted=false\n$`).FindStringSubmatch(con.String())
	if m == nil {
		t.Fatalf("console: %q", con.String())
	}
	if secs, _ := strconv.ParseFloat(m[1], 64); secs <= 0 {
		t.Errorf("t=%s, want the time since the kernel started", m[1])
	}
	if km.String() != "<15>"+con.String() {
		t.Errorf("kernel log %q, want the console's line at level 7", km.String())
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "": `""`, "two words": `"two words"`, `say "hi"`: `"say \"hi\""`, "a=b": `"a=b"`,
		"line\nbreak": `"line\nbreak"`, "tab\t": `"tab\t"`, "cr\r": `"cr\r"`, "esc\x1b[0m": `"esc\x1b[0m"`, "del\x7f": `"del\x7f"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// eventConstants are the values of the constants of events.go, read from
// its source: a new event needs no list of them kept by hand.
func eventConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				out[n.Name] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("events.go declares no event")
	}
	return out
}

// Every event is lower-case-with-dashes, declared once, and in the
// README's table of events; the table lists no other.
func TestEventsInREADME(t *testing.T) {
	consts := eventConstants(t)
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Console events\n")
	if !ok {
		t.Fatal(`README.md has no "## Console events" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
	}
	name := regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
	seen := map[string]string{}
	for c, v := range consts {
		if !name.MatchString(v) {
			t.Errorf("%s = %q: not lower-case-with-dashes", c, v)
		}
		if other, dup := seen[v]; dup {
			t.Errorf("%s and %s are both %q", c, other, v)
		}
		seen[v] = c
		if !documented[v] {
			t.Errorf("%s (%s) is not in README.md's table of console events", v, c)
		}
	}
	for v := range documented {
		if _, ok := seen[v]; !ok {
			t.Errorf("README.md's table of console events lists %s, which events.go does not declare", v)
		}
	}
}
