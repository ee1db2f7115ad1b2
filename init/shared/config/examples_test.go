package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestExampleConfigs validates every example in configs/: on its own, as
// NoCloud user-data, and as complete for the role it sets.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("configs/ has no *.yaml examples")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if err := ValidateFile(file); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseUserData(UserDataSource, data)
			if err != nil {
				t.Fatalf("not usable as NoCloud user-data: %v", err)
			}
			if c.NodeRole == "" {
				t.Fatal("an example should say its role")
			}
			if err := c.Validate(""); err != nil {
				t.Fatalf("incomplete for role %s: %v", c.NodeRole, err)
			}
			for _, f := range c.WriteFiles {
				if _, err := f.Decode(); err != nil {
					t.Error(err)
				}
			}
			if _, err := c.RKE2ConfigYAML(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestValidateFileMissing(t *testing.T) {
	err := ValidateFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ValidateFile of a missing file: %v", err)
	}
}
