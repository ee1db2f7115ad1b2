package content

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// tarStream opens the layer's tar stream, decompressing gzip or zstd (found
// by magic number), and checks both digests once the stream has been read
// to its end: the last Read, or finish, returns the mismatch instead of
// io.EOF. A zero DiffID is not checked but computed (diffID gives it), for
// a reader that learns it later. Whatever was made of a layer's bytes must
// be thrown away unless finish returns nil. A tar stream longer than max
// bytes is an error.
func (l *Layer) tarStream(max int64) (*verifiedStream, error) {
	blob, err := l.Open()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Where, err)
	}
	v := &verifiedStream{l: l, blob: blob, blobHash: &hashReader{r: blob, h: sha256.New()}, tarHash: sha256.New(), max: max}
	raw := bufio.NewReaderSize(v.blobHash, 1<<20)
	v.raw = raw
	// One decoder goroutine per layer: layers are read one at a time, and
	// the reader of the archive around them has its own.
	v.tar, v.release, v.compressed, err = decompress(raw, 1)
	if err != nil {
		blob.Close()
		return nil, fmt.Errorf("layer %s: %w", l.Where, err)
	}
	// An uncompressed blob is its tar: hash it once, not twice (hashing is
	// most of the time extraction takes).
	v.blobHash.off = !v.compressed
	return v, nil
}

// hashReader hashes what is read through it, until it is turned off.
type hashReader struct {
	r   io.Reader
	h   hash.Hash
	off bool
}

func (r *hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.off {
		r.h.Write(p[:n])
	}
	return n, err
}

// verifiedStream is a layer's uncompressed tar stream that checks the
// layer's digests at its end.
type verifiedStream struct {
	l          *Layer
	blob       io.ReadCloser
	raw        io.Reader // the blob, hashed into blobHash as read
	tar        io.Reader // the uncompressed tar, hashed into tarHash here
	release    func()
	compressed bool
	blobHash   *hashReader // off for an uncompressed blob: tarHash is its hash
	tarHash    hash.Hash
	gotDiffID  string // the uncompressed sha256, once at the end
	err        error  // sticky: the verdict once at the end
	read, max  int64  // the tar's bytes read so far, and the most it may have
}

func (v *verifiedStream) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.tar.Read(p)
	v.tarHash.Write(p[:n])
	if v.read += int64(n); v.read > v.max {
		// Checked as the bytes come, not at the end: they are being
		// written to disk, and the digest that would refuse them is known
		// only at the end.
		v.err = fmt.Errorf("layer %s: expands to more than %d bytes, the cap on one layer: not an image layer this node can hold", v.l.Where, v.max)
		return n, v.err
	}
	if err == io.EOF {
		v.err = v.check()
		if v.err == nil {
			v.err = io.EOF
		}
		return n, v.err
	}
	if err != nil {
		v.err = fmt.Errorf("layer %s: %w", v.l.Where, err)
		return n, v.err
	}
	return n, nil
}

// check runs at the end of the tar stream: it hashes what is left of the
// blob (a compressed stream's trailer) and compares both digests.
func (v *verifiedStream) check() error {
	if _, err := io.Copy(io.Discard, v.raw); err != nil {
		return fmt.Errorf("layer %s: %w", v.l.Where, err)
	}
	v.gotDiffID = hex.EncodeToString(v.tarHash.Sum(nil))
	if want := v.l.DiffID.Hex; want != "" && v.gotDiffID != want {
		return fmt.Errorf("layer %s: uncompressed sha256 is %s, the image config says %s: corrupt or tampered", v.l.Where, v.gotDiffID, want)
	}
	if v.l.Digest.Hex != "" {
		got := v.gotDiffID
		if v.compressed {
			got = hex.EncodeToString(v.blobHash.h.Sum(nil))
		}
		if got != v.l.Digest.Hex {
			return fmt.Errorf("layer %s: sha256 is %s, want %s: corrupt or tampered", v.l.Where, got, v.l.Digest.Hex)
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
	v.release()
	return v.blob.Close()
}
