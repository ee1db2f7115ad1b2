package conformance

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/internal/golden"
)

// TestRead reads a report as e2e.test writes it: each test's outcome in its
// list, a failure's first line without ginkgo's mark, a skip's reason,
// the specs the focus left out only counted.
func TestRead(t *testing.T) {
	f, err := os.Open("testdata/junit_01.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Passed) != 1 || len(s.Failed) != 1 || len(s.Skipped) != 1 || s.NotSelected != 2 || s.Seconds != 84.5 {
		t.Fatalf("summary %+v", s)
	}
	if got := s.Failed[0].Detail; got != "Unable to read agnhost_udp@dns-test-service from pod dns-7251/dns-test-1: the server is currently unable to handle the request" {
		t.Errorf("failure detail %q", got)
	}
	if got := s.Skipped[0].Detail; got != "Requires at least 2 nodes (not 1)" {
		t.Errorf("skip reason %q", got)
	}
	var b bytes.Buffer
	s.Write(&b)
	golden.Check(t, "summary.txt", b.Bytes())
}

func TestReadRefuses(t *testing.T) {
	for _, in := range []string{"", "<testsuites></testsuites>", "not xml", `<testsuites><testsuite><testcase name="x" status="weird"/></testsuite></testsuites>`} {
		if s, err := Read(strings.NewReader(in)); err == nil {
			t.Errorf("Read(%q) = %+v, want an error", in, s)
		}
	}
}

// FuzzRead: the report is e2e.test's output; no input panics.
func FuzzRead(f *testing.F) {
	b, err := os.ReadFile("testdata/junit_01.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Read(bytes.NewReader(b))
		if err == nil {
			s.Write(&bytes.Buffer{})
		}
	})
}
