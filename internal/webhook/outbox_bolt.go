package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BoltFile is the outbox file of a node that keeps it on its own disk, in
// its data directory.
const BoltFile = "webhooks.db"

// boltStore is the Store of one node: a bbolt file (locked to its
// process). Each queue is a top-level bucket "q:<name>" holding
//
//	rec/<key>  the sealed record (Item without its due time and lease)
//	due/<key>  due time (Unix ms, 8 bytes big-endian) and the holder's name
//	           ("" when not leased): no part of the event
//
// Keys are raw 16 bytes (Item.Key unhexed), oldest first.
type boltStore struct {
	db *bolt.DB
	s  *sealer
}

// OpenBolt opens (creating it, mode 0600) the outbox file at path, sealed
// under key (32 bytes). The file is locked to this process (a second
// open waits 2 s and fails), so the leases a stopped process held are
// released at once: its items are due again.
func OpenBolt(path string, key []byte) (Store, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("webhook outbox %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, q *bolt.Bucket) error {
			due := q.Bucket([]byte("due"))
			if due == nil {
				return nil
			}
			c := due.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(v) > 8 {
					if err := due.Put(k, slices.Clone(v[:8])); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("webhook outbox %s: %w", path, err)
	}
	return &boltStore{db: db, s: s}, nil
}

func (b *boltStore) Queue(name string) Outbox { return &boltQueue{st: b, name: name} }

func (b *boltStore) Close() error { return b.db.Close() }

type boltQueue struct {
	st   *boltStore
	name string
}

func (q *boltQueue) buckets(tx *bolt.Tx) (rec, due *bolt.Bucket, err error) {
	top := tx.Bucket([]byte("q:" + q.name))
	if top == nil {
		if !tx.Writable() {
			return nil, nil, nil
		}
		if top, err = tx.CreateBucket([]byte("q:" + q.name)); err != nil {
			return nil, nil, err
		}
	}
	if rec = top.Bucket([]byte("rec")); rec == nil && tx.Writable() {
		if rec, err = top.CreateBucket([]byte("rec")); err != nil {
			return nil, nil, err
		}
	}
	if due = top.Bucket([]byte("due")); due == nil && tx.Writable() {
		if due, err = top.CreateBucket([]byte("due")); err != nil {
			return nil, nil, err
		}
	}
	return rec, due, nil
}

func dueValue(t time.Time, holder string) []byte {
	v := make([]byte, 8, 8+len(holder))
	binary.BigEndian.PutUint64(v, uint64(t.UnixMilli()))
	return append(v, holder...)
}

func rawKey(key string) ([]byte, error) {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != 16 {
		return nil, fmt.Errorf("webhook outbox: bad item key %q", key)
	}
	return k, nil
}

func (q *boltQueue) Add(_ context.Context, it Item, max int) (dropped []Item, err error) {
	k, err := rawKey(it.Key)
	if err != nil {
		return nil, err
	}
	sealed, err := q.st.s.seal(q.name, it)
	if err != nil {
		return nil, err
	}
	err = q.st.db.Update(func(tx *bolt.Tx) error {
		dropped = nil
		rec, due, err := q.buckets(tx)
		if err != nil {
			return err
		}
		n := rec.Stats().KeyN
		c := rec.Cursor()
		for ok, v := c.First(); ok != nil && n >= max; ok, v = c.First() {
			old, err := q.st.s.open(q.name, hex.EncodeToString(ok), v)
			if err == nil {
				dropped = append(dropped, old)
			}
			ok = slices.Clone(ok)
			if err := rec.Delete(ok); err != nil {
				return err
			}
			if err := due.Delete(ok); err != nil {
				return err
			}
			n--
		}
		if err := rec.Put(k, sealed); err != nil {
			return err
		}
		return due.Put(k, dueValue(it.Created, ""))
	})
	return dropped, err
}

func (q *boltQueue) Claim(_ context.Context, holder string, now time.Time, lease time.Duration, n int) (out []Item, err error) {
	err = q.st.db.Update(func(tx *bolt.Tx) error {
		out = nil
		rec, due, err := q.buckets(tx)
		if err != nil {
			return err
		}
		type cand struct {
			k   []byte
			due int64
		}
		var cs []cand
		c := due.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) < 8 {
				continue
			}
			if d := int64(binary.BigEndian.Uint64(v[:8])); d <= now.UnixMilli() {
				cs = append(cs, cand{slices.Clone(k), d})
			}
		}
		slices.SortFunc(cs, func(a, b cand) int {
			if a.due != b.due {
				return cmp.Compare(a.due, b.due)
			}
			return bytes.Compare(a.k, b.k)
		})
		for _, cd := range cs[:min(n, len(cs))] {
			v := rec.Get(cd.k)
			if v == nil {
				if err := due.Delete(cd.k); err != nil {
					return err
				}
				continue
			}
			it, err := q.st.s.open(q.name, hex.EncodeToString(cd.k), v)
			if err != nil {
				// Sealed under another key or changed: it can never be
				// sent; it is removed rather than tried forever.
				_ = rec.Delete(cd.k)
				_ = due.Delete(cd.k)
				continue
			}
			if err := due.Put(cd.k, dueValue(now.Add(lease), holder)); err != nil {
				return err
			}
			out = append(out, it)
		}
		return nil
	})
	return out, err
}

// held reports whether holder holds key in due.
func held(due *bolt.Bucket, k []byte, holder string) bool {
	v := due.Get(k)
	return len(v) > 8 && string(v[8:]) == holder
}

func (q *boltQueue) Retry(_ context.Context, holder string, it Item, at time.Time) error {
	k, err := rawKey(it.Key)
	if err != nil {
		return err
	}
	sealed, err := q.st.s.seal(q.name, it)
	if err != nil {
		return err
	}
	return q.st.db.Update(func(tx *bolt.Tx) error {
		rec, due, err := q.buckets(tx)
		if err != nil {
			return err
		}
		if !held(due, k, holder) {
			return ErrLost
		}
		if err := rec.Put(k, sealed); err != nil {
			return err
		}
		return due.Put(k, dueValue(at, ""))
	})
}

func (q *boltQueue) Remove(_ context.Context, holder, key string) error {
	k, err := rawKey(key)
	if err != nil {
		return err
	}
	err = q.st.db.Update(func(tx *bolt.Tx) error {
		rec, due, err := q.buckets(tx)
		if err != nil {
			return err
		}
		if !held(due, k, holder) {
			return ErrLost
		}
		if err := rec.Delete(k); err != nil {
			return err
		}
		return due.Delete(k)
	})
	if err != nil && !errors.Is(err, ErrLost) {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return err
}
