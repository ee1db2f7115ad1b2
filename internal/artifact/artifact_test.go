package artifact

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed key: n picks which.
func testKey(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var epoch = time.Unix(1735689600, 0).UTC() // 2025-01-01

func testManifest() Manifest {
	return Manifest{Role: "server", Version: "v1.34.4+rke2r1", Build: "test-build", Created: epoch}
}

// testSlot stands in for a slot image: n bytes that are not all alike.
func testSlot(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func write(t testing.TB, m Manifest, slot []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, m, bytes.NewReader(slot), key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// entry is a tar entry of a hand-made archive.
type entry struct {
	name string
	data []byte
	typ  byte // tar.TypeReg if 0
}

func rawTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.data))
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: typ, Name: e.name, Size: size, Mode: 0o644, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fullManifest is testManifest filled in for slot, as Write fills it.
func fullManifest(slot []byte) Manifest {
	m := testManifest()
	sum := sha256.Sum256(slot)
	m.Format, m.SlotSize, m.SlotSHA256 = FormatVersion, int64(len(slot)), hex.EncodeToString(sum[:])
	return m
}

func encode(t testing.TB, m Manifest) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signed is an artifact of body, signed with key, and slot.
func signed(t testing.TB, body []byte, key ed25519.PrivateKey, slot []byte) []byte {
	return rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: ed25519.Sign(key, body)}, entry{name: SlotName, data: slot})
}

// Write then Open gives back the manifest, filled in, and the slot image.
func TestRoundTrip(t *testing.T) {
	key := testKey(1)
	slot := testSlot(70000)
	m := testManifest()
	m.Role = "agent"
	// Any date and zone: the manifest has it in whole seconds, UTC.
	m.Created = time.Date(2025, 1, 1, 1, 0, 0, 123456789, time.FixedZone("CET", 3600))
	a, err := Open(bytes.NewReader(write(t, m, slot, key)), pubOf(key))
	if err != nil {
		t.Fatal(err)
	}
	got := a.Manifest()
	sum := sha256.Sum256(slot)
	if got.Format != 1 || got.Role != "agent" || got.Version != m.Version || got.Build != m.Build || !got.Created.Equal(epoch) ||
		got.Created.Location() != time.UTC || got.SlotSize != int64(len(slot)) || got.SlotSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest %+v", got)
	}
	content, err := io.ReadAll(a.Slot())
	if err != nil || !bytes.Equal(content, slot) {
		t.Fatalf("slot: %d bytes, same %v, err %v", len(content), bytes.Equal(content, slot), err)
	}
	// Read past its end, it says the same.
	if n, err := a.Slot().Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after the end: %d, %v", n, err)
	}
}

// The same inputs give the same bytes, whether the slot image can be
// sought or is spooled; the format is what the package comment says.
func TestDeterministic(t *testing.T) {
	key := testKey(1)
	slot := testSlot(5000)
	first := write(t, testManifest(), slot, key)
	if second := write(t, testManifest(), slot, key); !bytes.Equal(first, second) {
		t.Fatal("two writes of the same inputs differ")
	}
	var spooled bytes.Buffer
	if err := Write(&spooled, testManifest(), io.MultiReader(bytes.NewReader(slot)), key); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, spooled.Bytes()) {
		t.Fatal("a slot image read as a stream gives other bytes than one read as a file")
	}

	tr := tar.NewReader(bytes.NewReader(first))
	sum := sha256.Sum256(slot)
	wantManifest := `{"build":"test-build","created":"2025-01-01T00:00:00Z","format":1,"role":"server","slot_sha256":"` +
		hex.EncodeToString(sum[:]) + `","slot_size":5000,"version":"v1.34.4+rke2r1"}`
	for i, name := range []string{ManifestName, SignatureName, SlotName} {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if hdr.Name != name || hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o644 || hdr.Uid != 0 || hdr.Gid != 0 ||
			hdr.Uname != "" || hdr.Gname != "" || !hdr.ModTime.Equal(epoch) || hdr.Format&tar.FormatUSTAR == 0 {
			t.Errorf("entry %d: %+v", i, hdr)
		}
		data, _ := io.ReadAll(tr)
		switch name {
		case ManifestName:
			if string(data) != wantManifest {
				t.Errorf("manifest\n%s\nwant\n%s", data, wantManifest)
			}
		case SignatureName:
			if !ed25519.Verify(pubOf(key), []byte(wantManifest), data) {
				t.Error("the signature is not the manifest's")
			}
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after slot.img: %v, want the end", err)
	}
}

// The caller cannot make Write sign a manifest that lies about the slot
// image: the format, size and sha256 are Write's own.
func TestWriteSetsMeasures(t *testing.T) {
	key := testKey(1)
	slot := testSlot(1000)
	m := testManifest()
	m.Format, m.SlotSize, m.SlotSHA256 = 7, 10, strings.Repeat("0", 64)
	a, err := Open(bytes.NewReader(write(t, m, slot, key)), pubOf(key))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Manifest(); got.Format != 1 || got.SlotSize != 1000 || got.SlotSHA256 == m.SlotSHA256 {
		t.Errorf("manifest %+v: want the slot image's own measures", got)
	}
	if _, err := io.ReadAll(a.Slot()); err != nil {
		t.Fatal(err)
	}
}

// changing is a slot image file that is changed once it has been read
// through.
type changing struct {
	*bytes.Reader
	data  []byte
	reads int
}

func (c *changing) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		c.reads++
		if c.reads == 1 {
			c.data[len(c.data)-1] ^= 1
		}
	}
	return c.Reader.Seek(off, whence)
}

func TestWriteRefuses(t *testing.T) {
	key := testKey(1)
	for _, c := range []struct {
		name   string
		change func(m *Manifest)
		slot   io.Reader
		key    ed25519.PrivateKey
		want   string
	}{
		{"unknown role", func(m *Manifest) { m.Role = "worker" }, nil, nil, `role "worker"`},
		{"no version", func(m *Manifest) { m.Version = "" }, nil, nil, "version"},
		{"version with a space", func(m *Manifest) { m.Version = "v1 34" }, nil, nil, "' ' is not allowed"},
		{"no build", func(m *Manifest) { m.Build = "" }, nil, nil, "build"},
		{"no date", func(m *Manifest) { m.Created = time.Time{} }, nil, nil, "created"},
		{"empty slot image", nil, bytes.NewReader(nil), nil, "slot image: empty"},
		{"no key", nil, nil, ed25519.PrivateKey{1, 2, 3}, "not an ed25519 private key"},
		{"slot image changed while written", nil, func() io.Reader {
			data := testSlot(100)
			return &changing{Reader: bytes.NewReader(data), data: data}
		}(), nil, "changed while it was written"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := testManifest()
			if c.change != nil {
				c.change(&m)
			}
			slot, k := c.slot, c.key
			if slot == nil {
				slot = bytes.NewReader(testSlot(100))
			}
			if k == nil {
				k = key
			}
			if err := Write(io.Discard, m, slot, k); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// Every refusal: what was wrong, when it is found (at Open, or at the
// slot image's end), the sentinel it wraps and what its message says.
func TestRefused(t *testing.T) {
	key, other := testKey(1), testKey(2)
	slot := testSlot(3000)
	m := fullManifest(slot)
	body := encode(t, m)
	sig := ed25519.Sign(key, body)
	valid := write(t, testManifest(), slot, key)

	withManifest := func(change func(m *Manifest)) []byte {
		mm := fullManifest(slot)
		change(&mm)
		return signed(t, encode(t, mm), key, slot)
	}
	flipped := bytes.Clone(slot)
	flipped[1234] ^= 0x10
	tooLarge := bytes.Repeat([]byte(" "), MaxManifestSize+1)

	for _, c := range []struct {
		name    string
		data    []byte
		atSlot  bool // refused at the slot image's end, not at Open
		kind    error
		message string
	}{
		{"empty stream", nil, false, ErrFormat, "empty"},
		{"not a tar stream", bytes.Repeat([]byte("not a tar header "), 64), false, ErrFormat, "not a tar stream"},
		{"a stream cut in the manifest", valid[:700], false, ErrFormat, "cut short"},
		{"a stream cut in the slot image", valid[:len(valid)-2000], true, ErrFormat, "cut short"},
		{"manifest only", rawTar(t, entry{name: ManifestName, data: body}), false, ErrUnsigned, "ends after its manifest"},
		{"no signature", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SlotName, data: slot}), false, ErrUnsigned, "not signed"},
		{"empty signature", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName}, entry{name: SlotName, data: slot}), false, ErrUnsigned, "is empty"},
		{"short signature", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig[:63]}, entry{name: SlotName, data: slot}), false, ErrBadSignature, "63 bytes"},
		{"signed by another key", signed(t, body, other, slot), false, ErrBadSignature, "signed with another key"},
		{"manifest altered", rawTar(t, entry{name: ManifestName, data: bytes.Replace(body, []byte("server"), []byte("agent_"), 1)}, entry{name: SignatureName, data: sig}, entry{name: SlotName, data: slot}), false, ErrBadSignature, "altered"},
		{"signature of another manifest", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: ed25519.Sign(key, append(bytes.Clone(body), ' '))}, entry{name: SlotName, data: slot}), false, ErrBadSignature, "not by this upgrade key"},
		{"manifest over 64 KiB", rawTar(t, entry{name: ManifestName, data: tooLarge}, entry{name: SignatureName, data: ed25519.Sign(key, tooLarge)}), false, ErrFormat, "65537 bytes"},
		{"empty manifest", rawTar(t, entry{name: ManifestName}, entry{name: SignatureName, data: ed25519.Sign(key, nil)}), false, ErrFormat, "0 bytes"},
		{"unknown format", withManifest(func(m *Manifest) { m.Format = 2 }), false, ErrFormat, "format 2"},
		{"signed manifest not JSON", signed(t, []byte("role: server\n"), key, slot), false, ErrFormat, "not a JSON object"},
		{"no format", signed(t, []byte(`{"role":"server"}`), key, slot), false, ErrFormat, "no format"},
		{"unknown field", signed(t, append(bytes.TrimSuffix(body, []byte("}")), []byte(`,"zzz":1}`)...), key, slot), false, ErrFormat, `unknown field "zzz"`},
		{"not canonical", signed(t, append(bytes.Clone(body), '\n'), key, slot), false, ErrFormat, "canonical"},
		{"duplicate key", signed(t, append([]byte(`{"build":"x",`), body[1:]...), key, slot), false, ErrFormat, "canonical"},
		{"unknown role", withManifest(func(m *Manifest) { m.Role = "worker" }), false, ErrFormat, `role "worker"`},
		{"negative size", withManifest(func(m *Manifest) { m.SlotSize = -1 }), false, ErrFormat, "slot_size -1"},
		{"absurd size", withManifest(func(m *Manifest) { m.SlotSize = 1 << 40 }), false, ErrFormat, "slot_size 1099511627776"},
		{"bad sha256", withManifest(func(m *Manifest) { m.SlotSHA256 = strings.ToUpper(m.SlotSHA256) }), false, ErrFormat, "slot_sha256"},
		{"slot image first", rawTar(t, entry{name: SlotName, data: slot}, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig}), false, ErrFormat, `first entry is "slot.img"`},
		{"signature first", rawTar(t, entry{name: SignatureName, data: sig}, entry{name: ManifestName, data: body}, entry{name: SlotName, data: slot}), false, ErrFormat, "first entry"},
		{"manifest misnamed", rawTar(t, entry{name: "./" + ManifestName, data: body}, entry{name: SignatureName, data: sig}, entry{name: SlotName, data: slot}), false, ErrFormat, "first entry"},
		{"manifest a directory", rawTar(t, entry{name: ManifestName, typ: tar.TypeDir}, entry{name: SignatureName, data: sig}, entry{name: SlotName, data: slot}), false, ErrFormat, "not a regular file"},
		{"manifest a link", rawTar(t, entry{name: ManifestName, typ: tar.TypeSymlink}, entry{name: SignatureName, data: sig}), false, ErrFormat, "not a regular file"},
		{"signature misnamed", rawTar(t, entry{name: ManifestName, data: body}, entry{name: "sig", data: sig}, entry{name: SlotName, data: slot}), false, ErrFormat, `second entry is "sig"`},
		{"no slot image", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig}), false, ErrFormat, "no slot.img"},
		{"slot image misnamed", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig}, entry{name: "slot.iso", data: slot}), false, ErrFormat, `third entry is "slot.iso"`},
		{"slot image shorter than signed", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig}, entry{name: SlotName, data: slot[:2999]}), false, ErrDigest, "2999 bytes"},
		{"slot image longer than signed", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig}, entry{name: SlotName, data: append(bytes.Clone(slot), 0)}), false, ErrDigest, "3001 bytes"},
		{"slot image altered", signed(t, body, key, flipped), true, ErrDigest, "sha256"},
		{"an extra entry", rawTar(t, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: sig}, entry{name: SlotName, data: slot}, entry{name: "extra", data: []byte("x")}), true, ErrFormat, `entry "extra" follows`},
		{"a second artifact", append(bytes.Clone(valid[:len(valid)-1024]), valid...), true, ErrFormat, `entry "rke2os-upgrade.json" follows`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := Open(bytes.NewReader(c.data), pubOf(key))
			if !c.atSlot {
				if a != nil || !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.message) {
					t.Fatalf("Open: err = %v, want %v with %q", err, c.kind, c.message)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v; want it refused at the slot image's end", err)
			}
			_, err = io.ReadAll(a.Slot())
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("reading the slot image: err = %v, want %v with %q", err, c.kind, c.message)
			}
		})
	}
}

// A flipped bit in slot.img is found at its end: every read before the
// last returns no error, the last returns ErrDigest and never io.EOF.
func TestFlippedBitInSlot(t *testing.T) {
	key := testKey(1)
	slot := testSlot(4096)
	data := write(t, testManifest(), slot, key)
	i := bytes.Index(data, slot)
	if i < 0 {
		t.Fatal("slot image not found in the artifact")
	}
	data[i+len(slot)-1] ^= 0x01
	a, err := Open(bytes.NewReader(data), pubOf(key))
	if err != nil {
		t.Fatalf("Open: %v (the manifest and signature are intact)", err)
	}
	r := a.Slot()
	buf := make([]byte, 1)
	var n int
	for {
		k, err := r.Read(buf)
		n += k
		if err == io.EOF {
			t.Fatalf("io.EOF after %d bytes: the altered slot image was passed", n)
		}
		if err != nil {
			if !errors.Is(err, ErrDigest) || n != len(slot) {
				t.Fatalf("after %d bytes: %v, want ErrDigest at the end", n, err)
			}
			break
		}
	}
	if _, err := r.Read(buf); !errors.Is(err, ErrDigest) {
		t.Errorf("read again: %v, want the same error", err)
	}
}

func TestOpenWithoutKey(t *testing.T) {
	if _, err := Open(bytes.NewReader(nil), nil); err == nil || !strings.Contains(err.Error(), "no ed25519 public key") {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyFile(t *testing.T) {
	key := testKey(1)
	slot := testSlot(300000)
	data := write(t, testManifest(), slot, key)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.upgrade")
	must(t, os.WriteFile(good, data, 0o644))
	m, err := VerifyFile(good, pubOf(key))
	if err != nil || m.SlotSize != int64(len(slot)) || m.Version != "v1.34.4+rke2r1" {
		t.Fatalf("VerifyFile: %+v, %v", m, err)
	}
	if _, err := VerifyFile(good, pubOf(testKey(2))); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), good) {
		t.Errorf("another key: %v, want ErrBadSignature naming the file", err)
	}
	bad := filepath.Join(dir, "bad.upgrade")
	altered := bytes.Clone(data)
	altered[bytes.Index(altered, slot)+150000] ^= 0x80
	must(t, os.WriteFile(bad, altered, 0o644))
	if _, err := VerifyFile(bad, pubOf(key)); !errors.Is(err, ErrDigest) {
		t.Errorf("altered: %v, want ErrDigest", err)
	}
	if _, err := VerifyFile(filepath.Join(dir, "missing"), pubOf(key)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzOpen feeds hostile bytes to Open and the slot reader: they never
// panic, every refusal wraps a sentinel, and what they accept is the
// artifact that was signed, manifest and slot image, whatever tar
// encoding carries it.
func FuzzOpen(f *testing.F) {
	key := testKey(1)
	slot := testSlot(600)
	m := fullManifest(slot)
	body := encode(f, m)
	valid := write(f, testManifest(), slot, key)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(rawTar(f, entry{name: ManifestName, data: body}, entry{name: SlotName, data: slot}))
	f.Add(signed(f, body, testKey(2), slot))
	f.Add(signed(f, body, key, slot[:599]))
	f.Add(rawTar(f, entry{name: ManifestName, data: body}, entry{name: SignatureName, data: ed25519.Sign(key, body)}, entry{name: SlotName, data: slot}, entry{name: "x", data: []byte("x")}))
	for _, i := range []int{0, 100, 156, 512, 600, 1024, 1100, 1536, 2100, 3000} {
		if i < len(valid) {
			b := bytes.Clone(valid)
			b[i] ^= 0x04
			f.Add(b)
		}
	}
	pub := pubOf(key)
	sentinel := func(err error) bool {
		return errors.Is(err, ErrFormat) || errors.Is(err, ErrUnsigned) || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrDigest)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Open(bytes.NewReader(data), pub)
		if err != nil {
			if a != nil || !sentinel(err) {
				t.Fatalf("Open: %v (artifact %v): want a refusal that wraps a sentinel", err, a)
			}
			return
		}
		got := a.Manifest()
		if !bytes.Equal(encode(t, got), body) {
			t.Fatalf("Open accepted a manifest that was not signed: %+v", got)
		}
		content, err := io.ReadAll(io.LimitReader(a.Slot(), int64(len(slot))+1))
		if err != nil {
			if !sentinel(err) {
				t.Fatalf("slot: %v: want a refusal that wraps a sentinel", err)
			}
			return
		}
		if !bytes.Equal(content, slot) {
			t.Fatalf("the slot reader passed %d bytes that are not the signed slot image", len(content))
		}
	})
}

// ExampleOpen shows how a node takes an artifact: nothing of the slot
// image counts until its last read has passed.
func ExampleOpen() {
	key := testKey(1)
	var artifact bytes.Buffer
	if err := Write(&artifact, testManifest(), bytes.NewReader([]byte("a slot image")), key); err != nil {
		panic(err)
	}
	a, err := Open(&artifact, pubOf(key))
	if err != nil {
		fmt.Println(err) // unsigned, another key's, not an artifact
		return
	}
	var inactiveSlot bytes.Buffer
	if _, err := io.Copy(&inactiveSlot, a.Slot()); err != nil {
		fmt.Println(err) // altered: the slot written is not to be booted
		return
	}
	fmt.Println(a.Manifest().Version, inactiveSlot.String())
	// Output: v1.34.4+rke2r1 a slot image
}
