// Package etcdtest makes etcd snapshot files for tests, without an etcd:
// a bbolt database with etcd's "key" bucket holding revisions 1..n, its
// sha256 appended, as etcd streams a snapshot.
package etcdtest

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Snapshot is a snapshot's bytes with revisions 1..revs in its key
// bucket.
func Snapshot(t testing.TB, revs int) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("key"))
		if err != nil {
			return err
		}
		for rev := 1; rev <= revs; rev++ {
			k := binary.BigEndian.AppendUint64(nil, uint64(rev))
			k = binary.BigEndian.AppendUint64(append(k, '_'), 0)
			if err := b.Put(k, []byte("a key's value")); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return append(b, h[:]...)
}
