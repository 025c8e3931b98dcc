package media

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/telegate/telegate/internal/sealbox"
)

// visitStore is where visits live: the embedded store in the data
// directory (boltStore, one node) or a Redis shared by several nodes
// (redisStore). Both keep one record per visit, sealed with AES-256-GCM
// (NIST SP 800-38D) with the visit id as additional data, so a record
// copied under another id does not open.
//
// Every state transition is one update: fn sees the latest stored state
// and its result is written only if no other writer (goroutine or node)
// wrote the record meanwhile, else fn runs again on the newer state. So
// admission state, a participant's single place per identity, the
// participant cap and the waiting-room bound never see a stale read. The
// open-visit quotas (visits.max_visits, visits.max_visits_per_owner) are
// checked and taken in create, atomically, and released by the update that
// ends the visit.
//
// Every method is safe for concurrent use; every returned *visit is the
// caller's own copy.
type visitStore interface {
	// create stores v, a new visit with no stored record, when fewer than
	// q.open visits are open in the store and fewer than q.perOwner are
	// open for v's owner; otherwise it stores nothing and returns
	// errMaxVisits or errMaxVisitsPerOwner.
	create(ctx context.Context, v *visit, q quota) error
	// get returns the visit with id, or errVisitNotFound.
	get(ctx context.Context, id string) (*visit, error)
	// update applies fn to the visit with id atomically (see above). fn
	// may run more than once and must not keep state between runs. When
	// fn returns errNoChange nothing is written and update returns the
	// visit and nil; any other error of fn is returned with the visit fn
	// saw, nothing written. errVisitNotFound when there is no such visit.
	update(ctx context.Context, id string, fn func(*visit) error) (*visit, error)
	// owned returns the open visits of the owner (iss, sub).
	owned(ctx context.Context, iss, sub string) ([]*visit, error)
	// all returns every stored visit; records that cannot be opened are
	// skipped (and logged by the store).
	all(ctx context.Context) ([]*visit, error)
	// delete removes the visit's record (idempotent).
	delete(ctx context.Context, id string) error
	// shared reports whether other nodes write this store, so that a
	// node's copy of a visit may be stale.
	shared() bool
	close() error
}

// quota bounds the open (not ended) visits: in total and per owner.
type quota struct{ open, perOwner int }

// Visit store errors.
var (
	errVisitNotFound     = errors.New("media: no such visit")
	errVisitExists       = errors.New("media: a visit with this id exists")
	errMaxVisits         = errors.New("media: too many open visits")
	errMaxVisitsPerOwner = errors.New("media: too many open visits of this owner")
	errNoChange          = errors.New("media: nothing to store")
	errContended         = errors.New("media: the visit changed too often to be updated; try again")
)

// storeTimeout bounds one store call (every Redis round trip within it).
const storeTimeout = 3 * time.Second

// sealer seals visit records and names owners in the store's indexes
// without their identity.
type sealer struct {
	box   *sealbox.Box
	index []byte // HMAC key of owner hashes
}

// newSealer derives the record key (HMAC-SHA256(key, "telegate visits at
// rest v1"), as visits.db always used) and the owner-index key from key.
func newSealer(key []byte) (*sealer, error) {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	box, err := sealbox.FromKey(derive("telegate visits at rest v1"))
	if err != nil {
		return nil, err
	}
	return &sealer{box: box, index: derive("telegate visits owner index v1")}, nil
}

// seal returns nonce(12) | AES-256-GCM(v as JSON), with v.ID as additional
// data.
func (c *sealer) seal(v *visit) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return c.sealWith([]byte(v.ID), plain)
}

// sealWith returns nonce(12) | AES-256-GCM(plain) with ad as additional
// data (internal/sealbox).
func (c *sealer) sealWith(ad, plain []byte) ([]byte, error) {
	return c.box.Seal(nil, plain, ad), nil
}

// openWith reverses sealWith; errRecord when b does not open with ad.
func (c *sealer) openWith(ad, b []byte) ([]byte, error) {
	plain, err := c.box.Open(b, ad)
	if err != nil {
		return nil, errRecord
	}
	return plain, nil
}

// errRecord is a record that does not open: too short, sealed under
// another key or id, or malformed.
var errRecord = errors.New("media: visit record cannot be opened (changed invite key, or corrupt)")

// open reverses seal for the record stored under id.
func (c *sealer) open(id string, b []byte) (*visit, error) {
	plain, err := c.openWith([]byte(id), b)
	if err != nil {
		return nil, err
	}
	v := new(visit)
	if err := json.Unmarshal(plain, v); err != nil || v.ID != id {
		return nil, errRecord
	}
	return v, nil
}

// owner is the 16-byte index name of the owner (iss, sub): a truncated
// HMAC-SHA256 of both, length-prefixed, so the indexes hold no identity.
func (c *sealer) owner(iss, sub string) []byte {
	m := hmac.New(sha256.New, c.index)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(iss)))
	m.Write(n[:])
	m.Write([]byte(iss))
	m.Write([]byte(sub))
	return m.Sum(nil)[:16]
}

// storeCtx bounds one store call.
func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// storeFailure turns a store error that is not an *apiError into the 503
// visits answer, logging it without PHI.
func (s *Service) storeFailure(visitID string, err error) error {
	var ae *apiError
	if err == nil || errors.As(err, &ae) {
		return err
	}
	s.log.Error("visit store failed", "visit", visitID, "err", err)
	return fail(http.StatusServiceUnavailable, "store", "visit state could not be saved; try again")
}

// change applies fn to visit id in the store (visitStore.update) and makes
// the result this node's copy. Store failures become 503 with a nil visit;
// fn's own refusals (*apiError) are returned with the visit fn saw;
// errVisitNotFound is returned as is.
// Caller holds s.mu.
func (s *Service) change(id string, fn func(*visit) error) (*visit, error) {
	ctx, cancel := storeCtx()
	defer cancel()
	v, err := s.store.update(ctx, id, fn)
	if errors.Is(err, errVisitNotFound) {
		delete(s.visits, id)
		return nil, err
	}
	var ae *apiError
	if err != nil && !errors.As(err, &ae) {
		return nil, s.storeFailure(id, err)
	}
	return s.adopt(v), err
}

// adopt makes v this node's copy of its visit, keeping what is not stored
// (each participant's signaling allowance), and returns it.
// Caller holds s.mu.
func (s *Service) adopt(v *visit) *visit {
	if old := s.visits[v.ID]; old != nil && old != v {
		for _, p := range v.Participants {
			op := old.participant(p.ID)
			if op == nil {
				continue
			}
			if p.allowance == nil {
				p.allowance = op.allowance
			}
		}
	}
	s.visits[v.ID] = v
	return v
}

// lookup returns the visit with id: this node's copy, read again from the
// store first when other nodes share it; nil and no error when there is
// none. A store that cannot be read is the 503 visits answer (fail
// closed). Caller holds s.mu.
func (s *Service) lookup(id string) (*visit, error) {
	if !s.store.shared() {
		return s.visits[id], nil
	}
	ctx, cancel := storeCtx()
	defer cancel()
	v, err := s.store.get(ctx, id)
	switch {
	case errors.Is(err, errVisitNotFound):
		delete(s.visits, id)
		return nil, nil
	case err != nil:
		return nil, s.storeFailure(id, err)
	}
	return s.adopt(v), nil
}

// ownedVisits returns the open visits of (iss, sub). Caller holds s.mu.
func (s *Service) ownedVisits(iss, sub string) []*visit {
	if !s.store.shared() {
		var out []*visit
		for _, v := range s.visits {
			if v.active() && v.OwnerIss == iss && v.OwnerSub == sub {
				out = append(out, v)
			}
		}
		return out
	}
	ctx, cancel := storeCtx()
	defer cancel()
	vs, err := s.store.owned(ctx, iss, sub)
	if err != nil {
		s.log.Error("visit store read failed", "err", err)
		return nil
	}
	for i, v := range vs {
		vs[i] = s.adopt(v)
	}
	return vs
}

// saveFingerprint stores part's DTLS fingerprint and ICE credentials
// (accepted by acceptFingerprint on this node's copy) into the stored
// participant. Caller holds s.mu.
func (s *Service) saveFingerprint(visitID string, part *participant) {
	fp, ufrag, pwd := part.FP, part.Ufrag, part.Pwd
	_, _ = s.change(visitID, func(v *visit) error {
		p := v.participant(part.ID)
		if p == nil {
			return errNoChange
		}
		p.FP, p.Ufrag, p.Pwd = fp, ufrag, pwd
		return nil
	})
}

// refresh replaces this node's copies with the store's visits when other
// nodes share the store, so the expiry sweep sees visits created
// elsewhere. Caller holds s.mu.
func (s *Service) refresh() {
	ctx, cancel := storeCtx()
	defer cancel()
	vs, err := s.store.all(ctx)
	if err != nil {
		s.log.Error("visit store read failed", "err", err)
		return
	}
	seen := make(map[string]bool, len(vs))
	for _, v := range vs {
		seen[v.ID] = true
		s.adopt(v)
	}
	for id := range s.visits {
		if !seen[id] {
			delete(s.visits, id)
		}
	}
}

// unknownVisit answers errVisitNotFound with status and msg (reason
// "unknown-visit"); other errors pass unchanged.
func unknownVisit(err error, status int, msg string) error {
	if errors.Is(err, errVisitNotFound) {
		return fail(status, "unknown-visit", msg)
	}
	return err
}

// quotaError maps the store's quota refusals to the visits answers.
func quotaError(err error) error {
	switch {
	case errors.Is(err, errMaxVisits):
		return fail(http.StatusServiceUnavailable, "max-visits", "too many open visits; end one and try again")
	case errors.Is(err, errMaxVisitsPerOwner):
		return fail(http.StatusTooManyRequests, "max-visits-per-owner", "you have too many open visits; end one and try again")
	}
	return err
}
