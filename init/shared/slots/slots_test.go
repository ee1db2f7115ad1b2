package slots

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvRoundTrip(t *testing.T) {
	env := Env{VarGood: "B", VarTry: "A", VarTries: "2", "other": "kept", "odd": "a\\b\nc"}
	b, err := env.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != EnvSize || !bytes.HasSuffix(b, []byte("##")) {
		t.Fatalf("block is %d bytes, ends %q", len(b), b[len(b)-2:])
	}
	got, err := ParseEnv(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(env) {
		t.Fatalf("got %v, want %v", got, env)
	}
	for k, v := range env {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestParseEnvRefuses(t *testing.T) {
	good, _ := Env{}.Bytes()
	bad := bytes.Clone(good)
	copy(bad[len(envHeader):], "no equals sign\n")
	for name, b := range map[string][]byte{
		"short":     good[:512],
		"no header": append([]byte("x"), good[1:]...),
		"bad line":  bad,
	} {
		if _, err := ParseEnv(b); !errors.Is(err, ErrEnv) {
			t.Errorf("%s: err = %v, want ErrEnv", name, err)
		}
	}
	big := Env{"v": strings.Repeat("x", EnvSize)}
	if _, err := big.Bytes(); err == nil {
		t.Error("an oversized block was written")
	}
}

// GRUB's own tool writes blocks that ParseEnv reads, and reads ours.
func TestGRUBEditenv(t *testing.T) {
	tool, err := exec.LookPath("grub-editenv")
	if err != nil {
		t.Fatalf("grub-editenv (Debian's grub-common, which `make deps` installs): %v", err)
	}
	p := filepath.Join(t.TempDir(), "grubenv")
	run := func(args ...string) string {
		out, err := exec.Command(tool, append([]string{p}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grub-editenv %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	run("create")
	run("set", "good=B", "try=A", "tries=1")
	env, err := ReadEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if s := StateOf(env); s != (State{Good: B, Try: A, Tries: 1}) {
		t.Fatalf("state from grub-editenv's block = %+v", s)
	}
	State{Good: A}.Apply(env)
	env["note"] = "x y"
	if err := WriteEnvFile(p, env); err != nil {
		t.Fatal(err)
	}
	got := run("list")
	for _, want := range []string{"good=A\n", "note=x y\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("grub-editenv list = %q, want %q in it", got, want)
		}
	}
	if strings.Contains(got, "try") {
		t.Errorf("grub-editenv list = %q: the finished trial is still there", got)
	}
}

func TestWriteEnvFileInPlaceOnly(t *testing.T) {
	dir := t.TempDir()
	if err := WriteEnvFile(filepath.Join(dir, "missing"), Env{}); err == nil {
		t.Error("a missing block was created; GRUB could not find a new file's blocks")
	}
	p := filepath.Join(dir, "short")
	os.WriteFile(p, []byte("x"), 0o644)
	if err := WriteEnvFile(p, Env{}); err == nil || !strings.Contains(err.Error(), "not GRUB's 1024") {
		t.Errorf("err = %v", err)
	}
}

// The state as GRUB leaves it, and what each boot means.
func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   Env
		boot  Boot
		want  Outcome
		state State
	}{
		{"fresh disk", Env{}, Boot{Slot: A}, Steady, State{Good: A}},
		{"good B", Env{VarGood: "B"}, Boot{Slot: B}, Steady, State{Good: B}},
		{"first try", Env{VarGood: "A", VarTry: "B", VarTries: "1"}, Boot{Slot: B, Trial: true}, Trying, State{A, B, 1}},
		{"last try", Env{VarGood: "A", VarTry: "B", VarTries: "0"}, Boot{Slot: B, Trial: true}, Trying, State{A, B, 0}},
		{"tries used up", Env{VarGood: "A", VarTry: "B", VarTries: "0"}, Boot{Slot: A}, RolledBack, State{A, B, 0}},
		// Tries left but the good slot booted: GRUB fell back (it could
		// not load slot B) or it was chosen in the menu. The trial is
		// over: kept, each boot would fall back the same way.
		{"fallback with tries left", Env{VarGood: "A", VarTry: "B", VarTries: "1"}, Boot{Slot: A}, RolledBack, State{A, B, 1}},
		{"try of the good slot ignored", Env{VarGood: "A", VarTry: "A", VarTries: "2"}, Boot{Slot: A}, Steady, State{Good: A}},
		{"nonsense tries", Env{VarGood: "A", VarTry: "B", VarTries: "9"}, Boot{Slot: A}, RolledBack, State{A, B, 0}},
		{"nonsense good", Env{VarGood: "C"}, Boot{Slot: A}, Steady, State{Good: A}},
	} {
		s := StateOf(tc.env)
		if s != tc.state {
			t.Errorf("%s: state = %+v, want %+v", tc.name, s, tc.state)
		}
		if o := s.Outcome(tc.boot); o != tc.want {
			t.Errorf("%s: outcome = %v, want %v", tc.name, o, tc.want)
		}
	}
}

func TestArmConfirmForget(t *testing.T) {
	s := State{Good: A}
	if _, err := s.Arm(A); err == nil {
		t.Error("armed the good slot")
	}
	armed, err := s.Arm(B)
	if err != nil || armed != (State{A, B, DefaultTries}) {
		t.Fatalf("Arm = %+v, %v", armed, err)
	}
	env := Env{"keep": "1"}
	armed.Apply(env)
	if env[VarTry] != "B" || env[VarTries] != "2" || env["keep"] != "1" {
		t.Errorf("env = %v", env)
	}
	armed.Confirm(B).Apply(env)
	if StateOf(env) != (State{Good: B}) || env[VarTry] != "" {
		t.Errorf("confirmed env = %v", env)
	}
	if f := (State{A, B, 0}).Forget(); f != (State{Good: A}) {
		t.Errorf("Forget = %+v", f)
	}
}

func TestBootOf(t *testing.T) {
	if _, ok, err := BootOf("", ""); ok || err != nil {
		t.Errorf("no slot: ok=%v err=%v", ok, err)
	}
	if b, ok, err := BootOf("B", "1"); !ok || err != nil || b != (Boot{B, true}) {
		t.Errorf("B trial: %+v %v %v", b, ok, err)
	}
	if _, _, err := BootOf("C", "0"); err == nil || !strings.Contains(err.Error(), "rke2.slot=C") {
		t.Errorf("C: err = %v", err)
	}
}

func FuzzParseEnv(f *testing.F) {
	b, _ := Env{VarGood: "A", VarTry: "B", VarTries: "2"}.Bytes()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnv(b)
		if err != nil {
			return
		}
		out, err := env.Bytes()
		if err != nil {
			return // escapes can grow a block past its size
		}
		again, err := ParseEnv(out)
		if err != nil || len(again) != len(env) {
			t.Fatalf("round trip: %v, %v vs %v", err, again, env)
		}
		_ = StateOf(env).Outcome(Boot{Slot: A})
	})
}
