package content

import (
	"os"
	"path/filepath"
	"testing"
)

// builtArchive is the archive images/build.sh writes, seen from here.
const builtArchive = "../../build/images/rke2-images.linux-amd64.tar"

// BenchmarkOpen times reading the real archive once (indexing and hashing
// every entry, decompressing the .zst into a temporary file), then finding
// and extracting the runtime's /bin and /charts, when images/build.sh has
// built it.
func BenchmarkOpen(b *testing.B) {
	for _, p := range []string{builtArchive, builtArchive + ".zst"} {
		b.Run(filepath.Base(p), func(b *testing.B) {
			info, err := os.Stat(p)
			if err != nil {
				b.Skip(err)
			}
			b.SetBytes(info.Size())
			for i := 0; i < b.N; i++ {
				s, err := Open(p)
				if err != nil {
					b.Fatal(err)
				}
				img, err := s.FindRuntime("v1.34.4+rke2r1")
				if err != nil {
					b.Fatal(err)
				}
				if err := ExtractPaths(img, filepath.Join(b.TempDir(), "data"), []string{"/bin", "/charts"}); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}
