package conformance

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestSets: each set names tests e2e.test v1.34.4 has, once each, and its
// focus, matched as ginkgo matches (the suite's description, a space, the
// test's name), chooses those tests and no other of the 424.
func TestSets(t *testing.T) {
	f, err := os.Open("testdata/conformance-v1.34.4.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if err := sc.Err(); err != nil || len(all) != 424 {
		t.Fatalf("the list of v1.34.4's conformance tests: %d names, %v", len(all), err)
	}
	for n, why := range LeftOut {
		if !slices.Contains(all, n) || slices.Contains(Default, n) || why == "" {
			t.Errorf("left out: %q is no conformance test of v1.34.4, is in the default set, or has no reason", n)
		}
	}
	for name, set := range map[string][]string{"Default": Default, "Smoke": Smoke, "TwoNodes": TwoNodes} {
		re, err := regexp.Compile(Focus(set))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, n := range all {
			if re.MatchString("Kubernetes e2e suite " + n) {
				got = append(got, n)
			}
		}
		want := slices.Sorted(slices.Values(set))
		if len(slices.Compact(slices.Clone(want))) != len(set) {
			t.Errorf("%s names a test twice", name)
		}
		if !slices.Equal(got, want) {
			for _, n := range set {
				if !slices.Contains(all, n) {
					t.Errorf("%s: %q is no conformance test of v1.34.4", name, n)
				}
			}
			t.Errorf("%s's focus chooses %d tests, want its %d", name, len(got), len(set))
		}
	}
}
