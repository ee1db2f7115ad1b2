package content

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// layer is one layer of an image, wherever it is stored.
type layer struct {
	// diffID is the sha256 of the uncompressed tar, from the image config.
	diffID v1.Hash
	// digest is the sha256 of the blob as stored (compressed or not); zero
	// when the source does not say (a docker-save layer named by its old
	// layer ID).
	digest v1.Hash
	// open opens the blob as stored.
	open func() (io.ReadCloser, error)
	// where names the blob in errors: "a.tar:blobs/sha256/ab12...".
	where string
}

// tarStream opens the layer's tar stream, decompressing gzip or zstd (found
// by magic number), and checks both digests once the stream has been read
// to its end: the last Read, or finish, returns the mismatch instead of
// io.EOF. Whatever was made of a layer's bytes must be thrown away unless
// finish returns nil.
func (l *layer) tarStream() (*verifiedStream, error) {
	blob, err := l.open()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.where, err)
	}
	v := &verifiedStream{l: l, blob: blob, blobHash: sha256.New(), tarHash: sha256.New()}
	raw := bufio.NewReaderSize(io.TeeReader(blob, v.blobHash), 1<<20)
	v.raw = raw
	magic, _ := raw.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(raw)
		if err != nil {
			blob.Close()
			return nil, fmt.Errorf("layer %s: gzip: %w", l.where, err)
		}
		v.tar = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(raw, zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			blob.Close()
			return nil, fmt.Errorf("layer %s: zstd: %w", l.where, err)
		}
		v.tar, v.zstd = zr, zr
	default:
		v.tar = raw
	}
	return v, nil
}

// verifiedStream is a layer's uncompressed tar stream that checks the
// layer's digests at its end.
type verifiedStream struct {
	l                 *layer
	blob              io.ReadCloser
	raw               io.Reader // the blob, hashed into blobHash as read
	tar               io.Reader // the uncompressed tar, hashed into tarHash here
	zstd              *zstd.Decoder
	blobHash, tarHash hash.Hash
	err               error // sticky: the verdict once at the end
}

func (v *verifiedStream) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.tar.Read(p)
	v.tarHash.Write(p[:n])
	if err == io.EOF {
		v.err = v.check()
		if v.err == nil {
			v.err = io.EOF
		}
		return n, v.err
	}
	if err != nil {
		v.err = fmt.Errorf("layer %s: %w", v.l.where, err)
		return n, v.err
	}
	return n, nil
}

// check runs at the end of the tar stream: it hashes what is left of the
// blob (a compressed stream's trailer) and compares both digests.
func (v *verifiedStream) check() error {
	if _, err := io.Copy(io.Discard, v.raw); err != nil {
		return fmt.Errorf("layer %s: %w", v.l.where, err)
	}
	if got := hex.EncodeToString(v.tarHash.Sum(nil)); got != v.l.diffID.Hex {
		return fmt.Errorf("layer %s: uncompressed sha256 is %s, the image config says %s: corrupt or tampered", v.l.where, got, v.l.diffID.Hex)
	}
	if v.l.digest.Hex != "" {
		if got := hex.EncodeToString(v.blobHash.Sum(nil)); got != v.l.digest.Hex {
			return fmt.Errorf("layer %s: sha256 is %s, want %s: corrupt or tampered", v.l.where, got, v.l.digest.Hex)
		}
	}
	return nil
}

// finish reads the stream to its end (a tar reader stops at the
// end-of-archive blocks) and returns the verdict on its digests.
func (v *verifiedStream) finish() error {
	_, err := io.Copy(io.Discard, v) // nil on io.EOF, the mismatch otherwise
	return err
}

// Close releases the stream.
func (v *verifiedStream) Close() error {
	if v.zstd != nil {
		v.zstd.Close()
	}
	return v.blob.Close()
}
