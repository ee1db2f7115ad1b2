package content

import (
	"os"
	"testing"
)

func BenchmarkOpenZst(b *testing.B) {
	p := "../../build/images/rke2-images.linux-amd64.tar.zst"
	if _, err := os.Stat(p); err != nil {
		b.Skip(err)
	}
	for i := 0; i < b.N; i++ {
		s, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
