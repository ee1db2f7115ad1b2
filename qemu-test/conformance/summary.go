// Package conformance reads the JUnit report Kubernetes' e2e.test writes
// (--report-dir, junit_01.xml) into what make conformance prints: the
// tests passed, failed (each with its first error line) and skipped at
// run time (each with its reason), and those the suite's time budget left
// unrun. Specs the focus did not select are only counted.
package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Case is one test of the report.
type Case struct {
	Name string
	// Detail is a failure's first line, or a skip's reason.
	Detail  string
	Seconds float64
}

// Summary is a run's outcome.
type Summary struct {
	Passed, Failed, Skipped []Case
	// NotReached are the specs the focus chose that did not run: the
	// suite stopped first (Detail says why, as ginkgo does: "Suite
	// Timeout Elapsed" when the budget ran out).
	NotReached []Case
	// NotSelected counts the specs the focus and skip left out.
	NotSelected int
	Seconds     float64
}

// junitCase is a <testcase> as ginkgo writes it.
type junitCase struct {
	Name    string  `xml:"name,attr"`
	Status  string  `xml:"status,attr"`
	Time    float64 `xml:"time,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *junitProblem `xml:"failure"`
	Error   *junitProblem `xml:"error"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type junitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name       string  `xml:"name,attr"`
		Time       float64 `xml:"time,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

// chosen tells the specs the focus and skip chose (ginkgo's rule: the
// suite's description, a space and the spec's text, here the case's name
// without "[It] ", match the focus and not the skip) when the suite
// stopped before its end (stopped, ginkgo's SpecialSuiteFailureReason):
// in the report those left unrun look the same as those never chosen
// ("skipped" alone). With the suite run to its end, it is nil.
func chosen(stopped, suite, focus, skip string) (func(name string) bool, error) {
	if stopped == "" {
		return nil, nil
	}
	var f, k *regexp.Regexp
	var err error
	if focus != "" {
		if f, err = regexp.Compile(focus); err != nil {
			return nil, fmt.Errorf("junit report: FocusStrings: %w", err)
		}
	}
	if skip != "" {
		if k, err = regexp.Compile(skip); err != nil {
			return nil, fmt.Errorf("junit report: SkipStrings: %w", err)
		}
	}
	return func(name string) bool {
		text := suite + " " + name
		return (f == nil || f.MatchString(text)) && (k == nil || !k.MatchString(text))
	}, nil
}

// Read reads a JUnit report. A report with no test suite is an error: a
// run that wrote nothing is not a run that passed.
func Read(r io.Reader) (*Summary, error) {
	var js junitSuites
	if err := xml.NewDecoder(r).Decode(&js); err != nil {
		return nil, fmt.Errorf("junit report: %w", err)
	}
	if len(js.Suites) == 0 {
		return nil, fmt.Errorf("junit report: no <testsuite>")
	}
	s := &Summary{}
	for _, suite := range js.Suites {
		s.Seconds += suite.Time
		props := map[string]string{}
		for _, p := range suite.Properties {
			props[p.Name] = p.Value
		}
		stopped := props["SpecialSuiteFailureReason"]
		wasChosen, err := chosen(stopped, suite.Name, props["FocusStrings"], props["SkipStrings"])
		if err != nil {
			return nil, err
		}
		for _, c := range suite.Cases {
			k := Case{Name: strings.TrimPrefix(c.Name, "[It] "), Seconds: c.Time}
			switch {
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "interrupted" || c.Status == "aborted" || c.Status == "timedout":
				p := c.Failure
				if p == nil {
					p = c.Error
				}
				if p != nil {
					k.Detail = firstLine(p.Message, p.Text)
				}
				if k.Detail == "" {
					k.Detail = c.Status
				}
				s.Failed = append(s.Failed, k)
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				msg := ""
				if c.Skipped != nil {
					msg = c.Skipped.Message
				}
				reason, ok := strings.CutPrefix(msg, "skipped - ")
				if !ok {
					// "skipped" alone: left out by the focus,
					// pending, or not reached.
					if wasChosen != nil && strings.HasPrefix(c.Name, "[It] ") && wasChosen(k.Name) {
						k.Detail = stopped
						s.NotReached = append(s.NotReached, k)
					} else {
						s.NotSelected++
					}
					continue
				}
				k.Detail = firstLine(reason)
				s.Skipped = append(s.Skipped, k)
			case c.Status == "passed" || c.Status == "":
				// A suite's own nodes ([SynchronizedBeforeSuite],
				// [ReportAfterSuite] ...) are no tests: they count
				// only when they fail.
				if strings.HasPrefix(c.Name, "[It] ") {
					s.Passed = append(s.Passed, k)
				}
			default:
				return nil, fmt.Errorf("junit report: test %q has status %q", c.Name, c.Status)
			}
		}
	}
	return s, nil
}

// firstLine is the first non-empty line of the first text that has one,
// without ginkgo's "[FAILED] " mark.
func firstLine(texts ...string) string {
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return strings.TrimPrefix(l, "[FAILED] ")
			}
		}
	}
	return ""
}

// Missing are the tests of names the report holds nowhere (passed, failed,
// skipped or not run): tests the e2e binary does not have, as when a set
// names a test of a suite the binary leaves out, or one a new Kubernetes
// renamed. A run that chose them by name did not run them.
func (s *Summary) Missing(names []string) []string {
	seen := map[string]bool{}
	for _, l := range [][]Case{s.Passed, s.Failed, s.Skipped, s.NotReached} {
		for _, c := range l {
			seen[c.Name] = true
		}
	}
	var m []string
	for _, n := range names {
		if !seen[n] {
			m = append(m, n)
		}
	}
	return m
}

// Write writes the summary as make conformance prints it.
func (s *Summary) Write(w io.Writer) {
	fmt.Fprintf(w, "conformance: %d passed, %d failed, %d skipped, %d not run (%d not selected), %.0f s\n",
		len(s.Passed), len(s.Failed), len(s.Skipped), len(s.NotReached), s.NotSelected, s.Seconds)
	for _, c := range s.Failed {
		fmt.Fprintf(w, "FAILED  %s\n        %s\n", c.Name, c.Detail)
	}
	for _, c := range s.Skipped {
		fmt.Fprintf(w, "SKIPPED %s\n        %s\n", c.Name, c.Detail)
	}
	for _, c := range s.NotReached {
		fmt.Fprintf(w, "NOT RUN %s\n        %s\n", c.Name, c.Detail)
	}
	for _, c := range s.Passed {
		fmt.Fprintf(w, "passed  %s (%.1f s)\n", c.Name, c.Seconds)
	}
}
