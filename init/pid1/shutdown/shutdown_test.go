package shutdown

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func event(typ, code uint16, val int32) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], code)
	binary.LittleEndian.PutUint32(b[20:], uint32(val))
	return b
}

func TestIsPowerPress(t *testing.T) {
	tests := []struct {
		ev   []byte
		want bool
	}{
		{event(evKey, keyPower, 1), true},
		{event(evKey, keyPower, 0), false}, // release
		{event(evKey, 30, 1), false},       // KEY_A
		{event(0, 0, 0), false},            // EV_SYN
		{[]byte{1, 2}, false},
	}
	for i, tc := range tests {
		if got := IsPowerPress(tc.ev); got != tc.want {
			t.Errorf("%d: IsPowerPress = %v, want %v", i, got, tc.want)
		}
	}
}

func TestPowerButtons(t *testing.T) {
	dir := t.TempDir()
	for ev, name := range map[string]string{"event0": "AT Translated Set 2 keyboard", "event1": "Power Button", "event2": "Sleep Button"} {
		p := filepath.Join(dir, ev, "device")
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "name"), []byte(name+"\n"), 0o644)
	}
	if got, want := PowerButtons(dir), []string{"/dev/input/event1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("PowerButtons = %v, want %v", got, want)
	}
}
