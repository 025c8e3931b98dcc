package media

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of visits.db: the sealed records (visit id → record), the open
// visits (visit id → owner hash) and the open visits by owner (owner hash
// | visit id → nothing). The two indexes are rebuilt from the records
// whenever the store is opened.
var (
	bucketVisits = []byte("visits")
	bucketOpen   = []byte("open")
	bucketOwners = []byte("owners")
)

// boltStore is the visitStore of one node: <data_dir>/visits.db (bbolt),
// one sealed record per visit (titles and display names may be PHI).
// Every create and update is one bbolt read-write transaction, so
// transitions are serialised by bbolt's single writer.
type boltStore struct {
	db  *bolt.DB
	c   *sealer
	log *slog.Logger
}

var _ visitStore = (*boltStore)(nil)

// loadOrCreateKey reads <dir>/keys/invite.key (32 random bytes, mode 0600),
// creating it on first use.
func loadOrCreateKey(dir string) ([]byte, error) {
	kd := filepath.Join(dir, "keys")
	path := filepath.Join(kd, "invite.key")
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("media: %s is shorter than 32 bytes; remove it to generate a new one", path)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("media: reading the invite key: %w", err)
	}
	if err := os.MkdirAll(kd, 0o700); err != nil {
		return nil, fmt.Errorf("media: creating the key directory: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(dir) // created concurrently
	}
	if err != nil {
		return nil, fmt.Errorf("media: creating the invite key: %w", err)
	}
	if _, err := f.Write(k); err != nil {
		f.Close()
		return nil, fmt.Errorf("media: writing the invite key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("media: writing the invite key: %w", err)
	}
	return k, nil
}

// openBoltStore opens (creating) <dir>/visits.db and rebuilds its
// indexes; records that do not open are skipped with a warning.
func openBoltStore(dir string, key []byte, log *slog.Logger) (*boltStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media: creating the data directory: %w", err)
	}
	c, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "visits.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("media: opening the visit store (is another telegate using %s?): %w", dir, err)
	}
	st := &boltStore{db: db, c: c, log: log}
	if err := db.Update(st.reindex); err != nil {
		db.Close()
		return nil, fmt.Errorf("media: preparing the visit store: %w", err)
	}
	return st, nil
}

// reindex creates the buckets and rebuilds the open and owner indexes.
func (st *boltStore) reindex(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketVisits); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketOpen, bucketOwners} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketVisits).ForEach(func(k, b []byte) error {
		v, err := st.c.open(string(k), b)
		if err != nil || !v.active() {
			return nil
		}
		return st.index(tx, v)
	})
}

// index records the open visit v in both indexes.
func (st *boltStore) index(tx *bolt.Tx, v *visit) error {
	o := st.c.owner(v.OwnerIss, v.OwnerSub)
	if err := tx.Bucket(bucketOpen).Put([]byte(v.ID), o); err != nil {
		return err
	}
	return tx.Bucket(bucketOwners).Put(append(o, v.ID...), nil)
}

// unindex removes visit id from both indexes.
func (st *boltStore) unindex(tx *bolt.Tx, id string) error {
	open := tx.Bucket(bucketOpen)
	o := open.Get([]byte(id))
	if o == nil {
		return nil
	}
	if err := tx.Bucket(bucketOwners).Delete(append(append([]byte(nil), o...), id...)); err != nil {
		return err
	}
	return open.Delete([]byte(id))
}

// countKeys counts b's keys (Stats may not count this transaction's own
// writes).
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// ownerIDs returns the ids of the owner's open visits.
func ownerIDs(tx *bolt.Tx, o []byte) []string {
	var ids []string
	c := tx.Bucket(bucketOwners).Cursor()
	for k, _ := c.Seek(o); k != nil && len(k) > len(o) && string(k[:len(o)]) == string(o); k, _ = c.Next() {
		ids = append(ids, string(k[len(o):]))
	}
	return ids
}

func (st *boltStore) create(_ context.Context, v *visit, q quota) error {
	b, err := st.c.seal(v)
	if err != nil {
		return err
	}
	return st.db.Update(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketVisits)
		if recs.Get([]byte(v.ID)) != nil {
			return errVisitExists
		}
		if countKeys(tx.Bucket(bucketOpen)) >= q.open {
			return errMaxVisits
		}
		if len(ownerIDs(tx, st.c.owner(v.OwnerIss, v.OwnerSub))) >= q.perOwner {
			return errMaxVisitsPerOwner
		}
		if err := recs.Put([]byte(v.ID), b); err != nil {
			return err
		}
		return st.index(tx, v)
	})
}

func (st *boltStore) get(_ context.Context, id string) (*visit, error) {
	var v *visit
	err := st.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = st.read(tx, id)
		return err
	})
	return v, err
}

// read opens the record of id in tx.
func (st *boltStore) read(tx *bolt.Tx, id string) (*visit, error) {
	b := tx.Bucket(bucketVisits).Get([]byte(id))
	if b == nil {
		return nil, errVisitNotFound
	}
	return st.c.open(id, b)
}

func (st *boltStore) update(_ context.Context, id string, fn func(*visit) error) (*visit, error) {
	var seen *visit
	err := st.db.Update(func(tx *bolt.Tx) error {
		v, err := st.read(tx, id)
		if err != nil {
			return err
		}
		seen = v
		wasOpen := v.active()
		if err := fn(v); err != nil {
			return err
		}
		if v.ID != id {
			return errors.New("media: an update changed the visit id")
		}
		b, err := st.c.seal(v)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketVisits).Put([]byte(id), b); err != nil {
			return err
		}
		if wasOpen && !v.active() {
			return st.unindex(tx, id)
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return seen, err
}

func (st *boltStore) owned(_ context.Context, iss, sub string) ([]*visit, error) {
	var out []*visit
	err := st.db.View(func(tx *bolt.Tx) error {
		for _, id := range ownerIDs(tx, st.c.owner(iss, sub)) {
			if v, err := st.read(tx, id); err == nil {
				out = append(out, v)
			}
		}
		return nil
	})
	return out, err
}

func (st *boltStore) all(context.Context) ([]*visit, error) {
	var out []*visit
	err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVisits).ForEach(func(k, b []byte) error {
			v, err := st.c.open(string(k), b)
			if err != nil {
				st.log.Warn("visit record cannot be opened (changed invite key, or corrupt); skipped", "visit", string(k))
				return nil
			}
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("media: reading the visit store: %w", err)
	}
	return out, nil
}

func (st *boltStore) delete(_ context.Context, id string) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		if err := st.unindex(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bucketVisits).Delete([]byte(id))
	})
}

func (st *boltStore) shared() bool { return false }

func (st *boltStore) close() error { return st.db.Close() }
