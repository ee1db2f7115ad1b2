package nodesteps

import (
	"os"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/supervise"
)

// The test binary plays rke2-node: RKE2OS_FAKE_NODE says what it answers.
func TestMain(m *testing.M) {
	switch os.Getenv("RKE2OS_FAKE_NODE") {
	case "":
		os.Exit(m.Run())
	case "ok":
		os.Stdout.WriteString(`{"data_key":"v1.34.4-rke2r1-0123456789ab","bin_dir":"/x/bin","skipped":true,"seconds":0.5}` + "\n")
		os.Exit(0)
	case "failure":
		os.Stdout.WriteString(`{"error":"content: no rancher/rke2-runtime:v1.34.4-rke2r1 in any archive"}` + "\n")
		os.Exit(1)
	case "crash":
		os.Stderr.WriteString("panic: boom\n")
		os.Exit(2)
	case "garbage":
		os.Stdout.WriteString("not json\n")
		os.Exit(0)
	}
}

func TestRun(t *testing.T) {
	r := supervise.Reap()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fake, wantErr string
	}{
		{"ok", ""},
		{"failure", "no rancher/rke2-runtime:v1.34.4-rke2r1 in any archive"},
		{"crash", "rke2-node content: "},
		{"garbage", `answer "not json\n"`},
	} {
		t.Run(tc.fake, func(t *testing.T) {
			t.Setenv("RKE2OS_FAKE_NODE", tc.fake)
			var res ContentResult
			err := Run(r, self, &res, StepContent, "--server=true")
			if tc.wantErr == "" {
				if err != nil || res.DataKey != "v1.34.4-rke2r1-0123456789ab" || !res.Skipped || res.BinDir != "/x/bin" {
					t.Fatalf("Run = %+v, %v", res, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	var res ContentResult
	if err := Run(r, "/nonexistent/rke2-node", &res, StepContent); err == nil {
		t.Fatal("a missing rke2-node ran")
	}
}
