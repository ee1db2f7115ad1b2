// Package fsutil holds the file helpers the builder and the tests share.
package fsutil

import (
	"io"
	"os"
)

// CopyFile copies the regular file src to dst (created or truncated).
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFrom(dst, in)
}

// WriteFrom writes everything r gives into dst (created or truncated).
func WriteFrom(dst string, r io.Reader) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
