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
	s := readReport(t, "testdata/junit_01.xml")
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

// TestReadStopped reads a report of a suite its time budget stopped: the
// specs the focus chose and the skip did not leave out, not run, are
// listed apart from those it never chose.
func TestReadStopped(t *testing.T) {
	s := readReport(t, "testdata/junit_timeout.xml")
	if len(s.Passed) != 1 || len(s.Failed) != 1 || len(s.Skipped) != 0 || len(s.NotReached) != 1 || s.NotSelected != 3 {
		t.Fatalf("summary %+v", s)
	}
	if r := s.NotReached[0]; r.Name != "[sig-network] DNS should provide DNS for pods for Hostname [LinuxOnly] [Conformance]" || r.Detail != "Suite Timeout Elapsed" {
		t.Errorf("not reached: %+v", r)
	}
	var b bytes.Buffer
	s.Write(&b)
	golden.Check(t, "summary_timeout.txt", b.Bytes())
}

// TestMissing: of the names a run chose, those the report holds in no
// list are missing; a test that passed, failed or that the budget left
// unrun is not.
func TestMissing(t *testing.T) {
	s := readReport(t, "testdata/junit_timeout.xml")
	absent := "[sig-apps] Daemon set [Serial] should rollback without unnecessary restarts [Conformance]"
	names := []string{absent}
	for _, l := range [][]Case{s.Passed, s.Failed, s.NotReached} {
		names = append(names, l[0].Name)
	}
	if got := s.Missing(names); len(got) != 1 || got[0] != absent {
		t.Errorf("Missing(%q) = %q, want only %q", names, got, absent)
	}
	if got := s.Missing(nil); got != nil {
		t.Errorf("Missing(nil) = %q", got)
	}
}

// readReport reads the report of the file name.
func readReport(t *testing.T, name string) *Summary {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadRefuses(t *testing.T) {
	for _, in := range []string{"", "<testsuites></testsuites>", "not xml", `<testsuites><testsuite><testcase name="x" status="weird"/></testsuite></testsuites>`,
		`<testsuites><testsuite><properties><property name="SpecialSuiteFailureReason" value="Interrupted"/><property name="FocusStrings" value="(["/></properties></testsuite></testsuites>`} {
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
	if b, err = os.ReadFile("testdata/junit_timeout.xml"); err != nil {
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
