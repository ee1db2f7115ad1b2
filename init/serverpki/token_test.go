package serverpki

import (
	"strings"
	"testing"
)

var hash64 = strings.Repeat("0123456789abcdef", 4)

func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Token
		err  string
	}{
		{in: "secret", want: Token{Password: "secret"}},
		{in: "  secret\n", want: Token{Password: "secret"}},
		{in: "server:secret", want: Token{Password: "server:secret"}}, // bare: k3s keeps it whole
		{in: "K10" + hash64 + "::server:secret", want: Token{CAHash: hash64, Username: "server", Password: "secret"}},
		{in: "K10" + strings.ToUpper(hash64) + "::server:secret", want: Token{CAHash: hash64, Username: "server", Password: "secret"}},
		{in: "K10::node:s:e:c", want: Token{Username: "node", Password: "s:e:c"}},
		{in: "K10:::secret", want: Token{Password: "secret"}},
		{in: "K10server:secret", want: Token{Username: "server", Password: "secret"}}, // no "::": all credentials
		{in: "abcdef.0123456789abcdef", want: Token{Password: "abcdef.0123456789abcdef", Bootstrap: true}},
		{in: "K10" + hash64 + "::abcdef.0123456789abcdef", want: Token{CAHash: hash64, Password: "abcdef.0123456789abcdef", Bootstrap: true}},
		{in: "", err: "empty"},
		{in: "  \n", err: "empty"},
		{in: "sec\x00ret", err: "control character"},
		{in: "K10abc::server:secret", err: "not 64 hex digits"},
		{in: "K10" + strings.Repeat("zz", 32) + "::server:secret", err: "not 64 hex digits"},
		{in: "K10" + hash64 + "::server:", err: "no \"<user>:<secret>\""},
		{in: "K10" + hash64 + "::server", err: "no \"<user>:<secret>\""},
		{in: "K10" + hash64, err: "no \"<user>:<secret>\""},
	} {
		got, err := ParseToken(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseToken(%q) = %+v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseToken: tokens are untrusted (a config, a file someone copied):
// ParseToken never panics, what it accepts has a secret and a well-formed
// hash, and its K10 form parses back to the same token.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"secret", "K10" + hash64 + "::server:secret", "K10::node:a:b", "K10:::x", "K10x", "K10::",
		"abcdef.0123456789abcdef", "K10" + hash64 + "::abcdef.0123456789abcdef", "K10server:pw", "::::", "K10" + hash64 + "::::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.Password == "" {
			t.Fatalf("ParseToken(%q) = %+v: no secret", s, tok)
		}
		if tok.CAHash != "" && (len(tok.CAHash) != 64 || !isHex(tok.CAHash) || strings.ToLower(tok.CAHash) != tok.CAHash) {
			t.Fatalf("ParseToken(%q): hash %q", s, tok.CAHash)
		}
		if strings.ContainsAny(tok.String(), "\n\r\x00") {
			t.Fatalf("ParseToken(%q): %q does not fit on a line", s, tok.String())
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("ParseToken(%q) = %+v, but its form %q parses to %+v, %v", s, tok, tok.String(), again, err)
		}
	})
}
