package content

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// builtArchive is the archive images/build.sh writes, seen from here.
const builtArchive = "../../../build/images/rke2-images.linux-amd64.tar"

// BenchmarkBootstrap times the content bootstrap of a fresh node from the
// real airgap archive (plain and zstd) when images/build.sh has built it:
// find the runtime, extract its /bin and /charts with every digest checked,
// link bin, copy the charts. "skip" times a boot that finds it extracted.
func BenchmarkBootstrap(b *testing.B) {
	for _, p := range []string{builtArchive, builtArchive + ".zst"} {
		info, err := os.Stat(p)
		if err != nil {
			b.Skip(err)
		}
		abs, _ := filepath.Abs(p)
		newOpts := func(b *testing.B) Options {
			dir := b.TempDir()
			images := filepath.Join(dir, "agent", "images")
			os.MkdirAll(images, 0o755)
			if err := os.Symlink(abs, filepath.Join(images, filepath.Base(p))); err != nil {
				b.Fatal(err)
			}
			return Options{DataDir: dir, Version: "v1.34.4+rke2r1", Server: true, TempDir: b.TempDir(),
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		}
		b.Run(filepath.Base(p), func(b *testing.B) {
			b.SetBytes(info.Size())
			for b.Loop() {
				b.StopTimer()
				o := newOpts(b)
				b.StartTimer()
				if _, err := Bootstrap(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(filepath.Base(p)+"/skip", func(b *testing.B) {
			o := newOpts(b)
			if _, err := Bootstrap(context.Background(), o); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if res, err := Bootstrap(context.Background(), o); err != nil || !res.Skipped {
					b.Fatal(res, err)
				}
			}
		})
	}
}

// BenchmarkArchiveDigest times the digest of the real archive, as the
// image import computes it at every boot to skip what it imported before.
func BenchmarkArchiveDigest(b *testing.B) {
	for _, p := range []string{builtArchive, builtArchive + ".zst"} {
		info, err := os.Stat(p)
		if err != nil {
			b.Skip(err)
		}
		b.Run(filepath.Base(p), func(b *testing.B) {
			b.SetBytes(info.Size())
			for b.Loop() {
				if _, err := ArchiveDigest(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
