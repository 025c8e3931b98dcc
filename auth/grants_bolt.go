package auth

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telegate/telegate/grants"
)

// Bucket names of the grants in the embedded store.
var (
	bucketGrants   = []byte("bg-grants")   // id → nonce | AES-GCM(grant)
	bucketGOrder   = []byte("bg-order")    // created(8) | id → "" (oldest first)
	bucketGReview  = []byte("bg-reviewed") // id → "" (reviewed grants)
	bucketGActive  = []byte("bg-active")   // H(route, iss, sub)(16) → expires(8) | id of the latest grant
	bucketGSubject = []byte("bg-sub")      // H(iss, sub)(16) | expires(8) | id → ""
)

var grantBuckets = [][]byte{bucketGrants, bucketGOrder, bucketGReview, bucketGActive, bucketGSubject}

// boltGrants is the grants.Store kept in a BoltStore's file.
type boltGrants struct {
	s *BoltStore
	l grants.Limits
}

// Grants returns the grants.Store kept in the same file as the sessions,
// sealed with the same key, capped by l. It is valid while s is open.
func (s *BoltStore) Grants(l grants.Limits) grants.Store { return &boltGrants{s: s, l: l} }

func timeKey(t time.Time) []byte {
	k := make([]byte, 8)
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	return k
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Create implements grants.Store.
func (b *boltGrants) Create(_ context.Context, g *grants.Grant, now time.Time) error {
	if g == nil || g.ID == "" {
		return errors.New("auth: grant without id")
	}
	val, err := sealGrant(b.s.aead, g)
	if err != nil {
		return err
	}
	err = b.s.db.Update(func(tx *bolt.Tx) error {
		recs, order, reviewed := tx.Bucket(bucketGrants), tx.Bucket(bucketGOrder), tx.Bucket(bucketGReview)
		if recs.Get([]byte(g.ID)) != nil {
			return errors.New("auth: grant id in use")
		}
		// Per subject: drop the entries that expired, count the rest.
		sub := indexHash(g.Issuer, g.Subject)
		bySub := tx.Bucket(bucketGSubject)
		nowKey := timeKey(now)
		live := 0
		var stale [][]byte
		c := bySub.Cursor()
		for k, _ := c.Seek(sub); k != nil && bytes.HasPrefix(k, sub); k, _ = c.Next() {
			if bytes.Compare(k[hashLen:hashLen+8], nowKey) <= 0 {
				stale = append(stale, bytes.Clone(k))
			} else {
				live++
			}
		}
		for _, k := range stale {
			if err := bySub.Delete(k); err != nil {
				return err
			}
		}
		if b.l.PerSubject > 0 && live >= b.l.PerSubject {
			return grants.ErrSubjectLimit
		}
		// Globally: make room by removing the oldest reviewed grants.
		if b.l.Max > 0 {
			over := recs.Stats().KeyN - b.l.Max + 1
			var gone [][]byte
			oc := order.Cursor()
			for k, _ := oc.First(); k != nil && len(gone) < over; k, _ = oc.Next() {
				if reviewed.Get(k[8:]) != nil {
					gone = append(gone, bytes.Clone(k))
				}
			}
			if len(gone) < over {
				return grants.ErrStoreFull
			}
			for _, k := range gone {
				if err := b.removeLocked(tx, k); err != nil {
					return err
				}
			}
		}
		exp := timeKey(g.Expires)
		for _, put := range []struct {
			b    *bolt.Bucket
			k, v []byte
		}{
			{recs, []byte(g.ID), val},
			{order, concat(timeKey(g.Created), []byte(g.ID)), nil},
			{bySub, concat(sub, exp, []byte(g.ID)), nil},
			{tx.Bucket(bucketGActive), grantKeyHash(g.Route, g.Issuer, g.Subject), concat(exp, []byte(g.ID))},
		} {
			if err := put.b.Put(put.k, put.v); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, grants.ErrSubjectLimit) || errors.Is(err, grants.ErrStoreFull) {
		return err
	}
	if err != nil {
		return fmt.Errorf("auth: store grant: %w", err)
	}
	return nil
}

// removeLocked deletes the grant whose bg-order key is k, and its index
// entries, inside tx: every bucket stays bounded by grants.Limits.Max.
func (b *boltGrants) removeLocked(tx *bolt.Tx, k []byte) error {
	id := k[8:]
	recs, active := tx.Bucket(bucketGrants), tx.Bucket(bucketGActive)
	if rec := recs.Get(id); rec != nil {
		if g, err := openGrant(b.s.aead, string(id), rec); err == nil {
			if err := tx.Bucket(bucketGSubject).Delete(concat(indexHash(g.Issuer, g.Subject), timeKey(g.Expires), id)); err != nil {
				return err
			}
			ak := grantKeyHash(g.Route, g.Issuer, g.Subject)
			if v := active.Get(ak); len(v) > 8 && bytes.Equal(v[8:], id) {
				if err := active.Delete(ak); err != nil {
					return err
				}
			}
		}
	}
	for _, del := range []struct {
		b *bolt.Bucket
		k []byte
	}{{recs, id}, {tx.Bucket(bucketGReview), id}, {tx.Bucket(bucketGOrder), k}} {
		if err := del.b.Delete(del.k); err != nil {
			return err
		}
	}
	return nil
}

// Active implements grants.Store.
func (b *boltGrants) Active(_ context.Context, route, issuer, subject string, now time.Time) (*grants.Grant, error) {
	var g *grants.Grant
	err := b.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketGActive).Get(grantKeyHash(route, issuer, subject))
		if len(v) <= 8 || bytes.Compare(v[:8], timeKey(now)) <= 0 {
			return grants.ErrNotFound
		}
		rec := tx.Bucket(bucketGrants).Get(v[8:])
		if rec == nil {
			return grants.ErrNotFound
		}
		var err error
		g, err = openGrant(b.s.aead, string(v[8:]), rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The index is hashed: the record must name the same person and route.
	if g.Route != route || g.Issuer != issuer || g.Subject != subject || !g.Unexpired(now) {
		return nil, grants.ErrNotFound
	}
	return g, nil
}

// Get implements grants.Store.
func (b *boltGrants) Get(_ context.Context, id string) (*grants.Grant, error) {
	var g *grants.Grant
	err := b.s.db.View(func(tx *bolt.Tx) error {
		rec := tx.Bucket(bucketGrants).Get([]byte(id))
		if rec == nil {
			return grants.ErrNotFound
		}
		var err error
		g, err = openGrant(b.s.aead, id, rec)
		return err
	})
	return g, err
}

// List implements grants.Store.
func (b *boltGrants) List(_ context.Context, limit int) ([]*grants.Grant, error) {
	var out []*grants.Grant
	err := b.s.db.View(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketGrants)
		c := tx.Bucket(bucketGOrder).Cursor()
		for k, _ := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Prev() {
			id := k[8:]
			rec := recs.Get(id)
			if rec == nil {
				continue
			}
			g, err := openGrant(b.s.aead, string(id), rec)
			if err != nil {
				return err
			}
			out = append(out, g)
		}
		return nil
	})
	return out, err
}

// Review implements grants.Store.
func (b *boltGrants) Review(_ context.Context, id string, r grants.Review) (*grants.Grant, error) {
	var g *grants.Grant
	err := b.s.db.Update(func(tx *bolt.Tx) error {
		recs, reviewed := tx.Bucket(bucketGrants), tx.Bucket(bucketGReview)
		rec := recs.Get([]byte(id))
		if rec == nil {
			return grants.ErrNotFound
		}
		var err error
		if g, err = openGrant(b.s.aead, id, rec); err != nil {
			return err
		}
		if g.Review != nil || reviewed.Get([]byte(id)) != nil {
			return grants.ErrReviewed
		}
		g.Review = &r
		val, err := sealGrant(b.s.aead, g)
		if err != nil {
			return err
		}
		if err := recs.Put([]byte(id), val); err != nil {
			return err
		}
		return reviewed.Put([]byte(id), nil)
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}
