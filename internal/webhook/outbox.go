package webhook

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/telegate/telegate/internal/sealbox"
)

// Item is one pending delivery kept in an Outbox.
type Item struct {
	// Key is the outbox's own name of the item: hex of the creation time
	// (Unix milliseconds, 8 bytes big-endian) and 8 random bytes, so keys
	// sort oldest first. It names nothing else and is never sent.
	Key string
	// ID is the delivery id (DeliveryHeader), the same on every attempt,
	// on every node and across restarts: the receiver's idempotency key.
	ID string
	// Event is the event name (EventHeader).
	Event string
	// Body is the JSON body.
	Body []byte
	// Created is when the delivery was asked for; MaxAge counts from it.
	Created time.Time
	// Attempts is how many attempts were made so far.
	Attempts int
	// Last is the outcome of the last attempt ("" before the first):
	// "status:<code>" or "error".
	Last string
}

// Delivery is what the end of a delivery is reported with
// (Options.OnEnd): its id, event and body.
type Delivery struct {
	ID, Event string
	Body      []byte
}

// ErrLost is returned by Outbox.Retry and Outbox.Remove when the holder
// no longer holds the item: its lease ran out and another sender claimed
// it, or it was dropped meanwhile.
var ErrLost = errors.New("webhook: the outbox item is no longer held")

// Outbox keeps one Sender's pending deliveries. Items are due (to be
// attempted) from a time on; Claim leases due items to one holder until
// the lease ends, so that of the senders sharing an outbox (one per node)
// exactly one attempts a given item at a time; an item whose holder
// stopped is due again when its lease ends. Implementations: the memory
// outbox (Options.Outbox nil), the bbolt file of one node (OpenBolt) and
// Redis shared by every node (OpenRedis); one conformance suite for all.
type Outbox interface {
	// Add stores it, due at once. When the outbox holds max items or
	// more, the oldest are removed first and returned (each to be ended
	// as Dropped), held or not.
	Add(ctx context.Context, it Item, max int) (dropped []Item, err error)
	// Claim leases to holder at most n items due at or before now, the
	// oldest due first, each until now+lease (then due again), and
	// returns them.
	Claim(ctx context.Context, holder string, now time.Time, lease time.Duration, n int) ([]Item, error)
	// Retry records a failed attempt of it (its Attempts and Last), due
	// again at due, and releases holder's lease; ErrLost when holder does
	// not hold it.
	Retry(ctx context.Context, holder string, it Item, due time.Time) error
	// Remove ends the item of key that holder holds (delivered, refused
	// for good or expired); ErrLost when holder does not hold it.
	Remove(ctx context.Context, holder, key string) error
}

// Store holds the outboxes of every Sender of a node, one queue per
// Sender name ("break-glass", "visit-alert:<clinic>"), in one bbolt file
// (OpenBolt) or one Redis (OpenRedis).
type Store interface {
	// Queue returns the outbox of name.
	Queue(name string) Outbox
	// Close closes the store; every Sender on it is closed first.
	Close() error
}

// newKey returns a fresh Item.Key for an item created at t.
func newKey(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// NewHolder returns a fresh lease holder name: random, one per Sender and
// start, so a restarted node never mistakes its predecessor's leases for
// its own.
func NewHolder() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// record is an Item at rest: sealed (sealbox) as JSON with the queue and
// key as additional data, since a body may name a visit or a person.
type record struct {
	ID       string `json:"id"`
	Event    string `json:"event"`
	Body     []byte `json:"body"`
	Created  int64  `json:"created"` // Unix milliseconds
	Attempts int    `json:"attempts"`
	Last     string `json:"last,omitempty"`
}

// outboxKeyPurpose is the sealbox purpose of outbox records.
const outboxKeyPurpose = "telegate webhook outbox v1"

// sealer seals and opens the records of a store's queues.
type sealer struct{ box *sealbox.Box }

func newSealer(key []byte) (*sealer, error) {
	box, err := sealbox.New(key, outboxKeyPurpose)
	if err != nil {
		return nil, fmt.Errorf("webhook outbox: %w", err)
	}
	return &sealer{box: box}, nil
}

func recordAD(queue, key string) []byte { return []byte(queue + "\x00" + key) }

func (s *sealer) seal(queue string, it Item) ([]byte, error) {
	b, err := json.Marshal(record{ID: it.ID, Event: it.Event, Body: it.Body, Created: it.Created.UnixMilli(), Attempts: it.Attempts, Last: it.Last})
	if err != nil {
		return nil, err
	}
	return s.box.Seal(nil, b, recordAD(queue, it.Key)), nil
}

func (s *sealer) open(queue, key string, sealed []byte) (Item, error) {
	b, err := s.box.Open(sealed, recordAD(queue, key))
	if err != nil {
		return Item{}, fmt.Errorf("webhook outbox item %s: %w", key, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Item{}, fmt.Errorf("webhook outbox item %s: %w", key, err)
	}
	return Item{Key: key, ID: r.ID, Event: r.Event, Body: r.Body, Created: time.UnixMilli(r.Created), Attempts: r.Attempts, Last: r.Last}, nil
}

// memOutbox is the Outbox of a Sender given none: in memory, lost when
// the process stops (its items end as Closed on Close).
type memOutbox struct {
	mu    sync.Mutex
	items map[string]*memItem
}

type memItem struct {
	it     Item
	due    time.Time
	holder string
}

func newMemOutbox() *memOutbox { return &memOutbox{items: map[string]*memItem{}} }

func (m *memOutbox) Add(_ context.Context, it Item, max int) ([]Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var dropped []Item
	for len(m.items) >= max && len(m.items) > 0 {
		oldest := ""
		for k := range m.items {
			if oldest == "" || k < oldest {
				oldest = k
			}
		}
		dropped = append(dropped, m.items[oldest].it)
		delete(m.items, oldest)
	}
	m.items[it.Key] = &memItem{it: it, due: it.Created}
	return dropped, nil
}

func (m *memOutbox) Claim(_ context.Context, holder string, now time.Time, lease time.Duration, n int) ([]Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []*memItem
	for _, e := range m.items {
		if !e.due.After(now) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *memItem) int { return a.due.Compare(b.due) })
	var out []Item
	for _, e := range due[:min(n, len(due))] {
		e.due, e.holder = now.Add(lease), holder
		out = append(out, e.it)
	}
	return out, nil
}

func (m *memOutbox) Retry(_ context.Context, holder string, it Item, due time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.items[it.Key]
	if e == nil || e.holder != holder {
		return ErrLost
	}
	e.it.Attempts, e.it.Last = it.Attempts, it.Last
	e.due, e.holder = due, ""
	return nil
}

func (m *memOutbox) Remove(_ context.Context, holder, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.items[key]
	if e == nil || e.holder != holder {
		return ErrLost
	}
	delete(m.items, key)
	return nil
}

// drain removes and returns every item (Close of a memory outbox).
func (m *memOutbox) drain() []Item {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Item
	for k, e := range m.items {
		out = append(out, e.it)
		delete(m.items, k)
	}
	slices.SortFunc(out, func(a, b Item) int { return a.Created.Compare(b.Created) })
	return out
}
