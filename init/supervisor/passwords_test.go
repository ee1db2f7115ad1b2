package supervisor

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "s3cret") || !strings.HasPrefix(h, "$1:") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := hashPassword("s3cret")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		hash, password string
		ok             bool
		err            string
	}{
		{h, "s3cret", true, ""},
		{h, "s3cret ", false, ""},
		{h, "", false, ""},
		{"plain", "s3cret", false, "not in the form"},
		{"$1:zz:12:8:1:00", "s3cret", false, "hash:"},
		{"$1:00:40:8:1:00", "s3cret", false, "out of range"},
		{"$2:00:12:8:1:00", "s3cret", false, "not in the form"},
	} {
		ok, err := verifyPassword(tc.hash, tc.password)
		if ok != tc.ok || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("verify(%q, %q) = %v, %v; want %v, %q", tc.hash, tc.password, ok, err, tc.ok, tc.err)
		}
	}
}

// FuzzVerifyPassword: a secret's hash is read from the cluster, where
// anyone who may write secrets in kube-system can put anything; no input
// panics or runs away (the cost parameters are bounded).
func FuzzVerifyPassword(f *testing.F) {
	h, _ := hashPassword("pw")
	f.Add(h, "pw")
	f.Add("$1:00:12:8:1:00", "x")
	f.Add("$1::1:1:1:", "")
	f.Fuzz(func(t *testing.T, hash, password string) {
		ok, err := verifyPassword(hash, password)
		if ok && err != nil {
			t.Fatal("accepted with an error")
		}
	})
}
