package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Tuning of the writer. Records pass through a buffered channel of
// QueueSize events to one writer goroutine.
const (
	// QueueSize is the number of events that may wait for the writer.
	QueueSize = 4096
	// EnqueueTimeout is how long Record waits for room in a full queue
	// before it drops the event, counts it (Dropped) and logs an error.
	EnqueueTimeout = 100 * time.Millisecond
	// SyncInterval is the longest time a written record waits for fsync.
	SyncInterval = time.Second
	// MaxLineBytes caps one audit line. An event whose line would be longer
	// loses its Attrs (and gains attrs {"truncated":"true"}).
	MaxLineBytes = 64 << 10
)

// header is the chain part of a line, written before the event's fields.
type header struct {
	// Seq numbers lines from 1 in the file.
	Seq uint64 `json:"seq"`
	// Prev is hex SHA-256 of the previous line (without its newline); ""
	// on line 1.
	Prev string `json:"prev"`
}

// line is what is serialised: seq, prev, then the event's fields.
type line struct {
	header
	Event
}

// Log is the append-only, hash-chained audit trail. Each line is one JSON
// object:
//
//	{"seq":N,"prev":"<hex sha256 of line N-1>",<event fields>,"mac":"<hex>"}
//
// where mac = HMAC-SHA256(key, prev || C) (RFC 2104) and C is the line's
// canonical JSON: the line itself with its trailing `,"mac":"…"` member
// removed (the bytes up to the mac, then "}"). Editing, deleting, inserting
// or reordering lines breaks a mac, a prev or a seq, which Verify reports
// with the line number.
//
// Writes are asynchronous and bounded: Record queues the event (QueueSize);
// one goroutine writes lines through a buffer that is flushed to the file
// whenever the queue runs empty, and fsynced at most SyncInterval later and
// on Close. When the queue is full, Record waits up to EnqueueTimeout and
// then drops the event, counts it in Dropped and logs an error naming only
// the event type. A Log is safe for concurrent use.
type Log struct {
	path   string
	key    []byte
	logger *slog.Logger

	mu     sync.RWMutex // guards closed against sends on ch
	closed bool
	ch     chan Event
	done   chan struct{}

	// writer state, owned by the writer goroutine.
	f    *os.File
	w    *bufio.Writer
	seq  uint64
	prev string

	gen       atomic.Uint64
	written   atomic.Uint64
	dropped   atomic.Uint64
	errs      atomic.Uint64
	lastErr   atomic.Pointer[error]
	closeErr  error
	closeOnce sync.Once
}

// Open opens (or creates, with mode 0600 and parent directories 0700) the
// audit file at path and continues its chain: the next line gets the
// sequence number after the last line's and its hash as prev. key is the
// HMAC key (at least 32 bytes, see Key). Logging errors go to slog's
// default logger; use OpenWithLogger to choose.
//
// Errors: a key shorter than 32 bytes; a file that cannot be opened or
// locked (another process writes it); a last line that is not a record or
// does not verify with key (wrong key, or the tail was edited: run
// `telegate audit verify`). An incomplete last line left by a crash (no
// trailing newline) is cut off, and the log records an "audit.recover"
// event with the number of bytes and their SHA-256, so the chain stays
// verifiable.
func Open(path string, key []byte) (*Log, error) {
	return OpenWithLogger(path, key, slog.Default())
}

// OpenWithLogger is Open with the logger that receives write errors and
// drop notices (never event contents).
func OpenWithLogger(path string, key []byte, logger *slog.Logger) (*Log, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("audit: key is %d bytes, need at least 32", len(key))
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s is in use by another process: %w", path, err)
	}
	l := &Log{
		path:   path,
		key:    bytes.Clone(key),
		logger: logger,
		ch:     make(chan Event, QueueSize),
		done:   make(chan struct{}),
		f:      f,
		w:      bufio.NewWriterSize(f, 64<<10),
	}
	last, partial, err := readTail(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: read %s: %w", path, err)
	}
	if last != nil {
		seq, err := checkLine(last, key)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: last line of %s does not verify (%v); check the key, then run `telegate audit verify`", path, err)
		}
		l.seq = seq
		l.prev = lineHash(last)
	}
	if len(partial) > 0 {
		info, err := f.Stat()
		if err == nil {
			err = f.Truncate(info.Size() - int64(len(partial)))
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: cut incomplete last line of %s: %w", path, err)
		}
		sum := sha256.Sum256(partial)
		l.write(Event{Time: time.Now().UTC(), Type: "audit.recover", Reason: "incomplete-last-line",
			Attrs: map[string]string{"bytes": fmt.Sprint(len(partial)), "sha256": hex.EncodeToString(sum[:])}})
		if err := l.flushSync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: write %s: %w", path, err)
		}
	}
	go l.run()
	return l, nil
}

// SetGeneration sets the configuration generation stamped on events that
// carry none (Event.Generation 0).
func (l *Log) SetGeneration(id uint64) { l.gen.Store(id) }

// Record implements Sink. It stamps e.Time (UTC) and e.Generation when
// zero and queues e; it
// never blocks longer than EnqueueTimeout. After Close, events are dropped
// and counted.
func (l *Log) Record(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if e.Generation == 0 {
		e.Generation = l.gen.Load()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.drop(e, "closed")
		return
	}
	select {
	case l.ch <- e:
		return
	default:
	}
	t := time.NewTimer(EnqueueTimeout)
	defer t.Stop()
	select {
	case l.ch <- e:
	case <-t.C:
		l.drop(e, "queue full")
	case <-ctx.Done():
		// The request is gone, the record is not: wait out the timer.
		select {
		case l.ch <- e:
		case <-t.C:
			l.drop(e, "queue full")
		}
	}
}

func (l *Log) drop(e Event, why string) {
	n := l.dropped.Add(1)
	l.logger.Error("audit record dropped", "event_type", e.Type, "why", why, "dropped_total", n)
}

// Close stops accepting records, writes every queued one, flushes and
// fsyncs the file and closes it. It returns the first error from writing,
// syncing or closing. Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.ch)
		l.mu.Unlock()
		<-l.done
		err := l.flushSync()
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
		l.closeErr = err
	})
	return l.closeErr
}

// Written is the number of records written since Open.
func (l *Log) Written() uint64 { return l.written.Load() }

// Dropped is the number of records dropped because the queue stayed full
// or the log was closed (export as telegate_audit_dropped_records_total).
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// WriteErrors is the number of failed writes or syncs.
func (l *Log) WriteErrors() uint64 { return l.errs.Load() }

// Healthy returns nil while the trail is being written, and otherwise why
// not (for a readiness check): the last write or sync error (the writer
// does not recover from one: restart to reopen the file), the log is
// closed, or the open file is no longer the one at its path (removed or
// replaced, so records would land where nobody finds them).
func (l *Log) Healthy() error {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errors.New("audit: log closed")
	}
	// l.f stays open while l.closed is false and the read lock is held.
	open, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: %s: %w", l.path, err)
	}
	at, err := os.Stat(l.path)
	if err != nil || !os.SameFile(open, at) {
		return fmt.Errorf("audit: %s was removed or replaced while open; new records do not reach that path (restart to reopen it)", l.path)
	}
	return nil
}

func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(SyncInterval)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case e, ok := <-l.ch:
			if !ok {
				return
			}
			l.write(e)
			dirty = true
			if len(l.ch) == 0 {
				if err := l.w.Flush(); err != nil {
					l.fail("flush", err)
				}
			}
		case <-tick.C:
			if dirty {
				if err := l.flushSync(); err != nil {
					l.fail("sync", err)
				}
				dirty = false
			}
		}
	}
}

// write appends one line for e. Only the writer goroutine (or Open before
// it starts) calls it.
func (l *Log) write(e Event) {
	b, err := l.encode(e)
	if err != nil {
		l.fail("encode", err)
		return
	}
	if _, err := l.w.Write(b); err != nil {
		l.fail("write", err)
		return
	}
	l.seq++
	l.prev = lineHash(b[:len(b)-1])
	l.written.Add(1)
}

// encode returns the full line for e, newline included.
func (l *Log) encode(e Event) ([]byte, error) {
	c, err := json.Marshal(line{header{Seq: l.seq + 1, Prev: l.prev}, e})
	if err != nil {
		return nil, err
	}
	if len(c) > MaxLineBytes-100 {
		e.Attrs = map[string]string{"truncated": "true"}
		if c, err = json.Marshal(line{header{Seq: l.seq + 1, Prev: l.prev}, e}); err != nil {
			return nil, err
		}
	}
	mac := computeMAC(l.key, l.prev, c)
	out := make([]byte, 0, len(c)+80)
	out = append(out, c[:len(c)-1]...)
	out = append(out, `,"mac":"`...)
	out = append(out, mac...)
	out = append(out, "\"}\n"...)
	return out, nil
}

func (l *Log) flushSync() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	return l.f.Sync()
}

func (l *Log) fail(op string, err error) {
	l.errs.Add(1)
	werr := fmt.Errorf("audit: %s %s: %w", op, l.path, err)
	l.lastErr.Store(&werr)
	l.logger.Error("audit write failed", "op", op, "err", err)
}

// computeMAC is hex(HMAC-SHA256(key, prev || canonical)).
func computeMAC(key []byte, prev string, canonical []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prev))
	m.Write(canonical)
	return hex.EncodeToString(m.Sum(nil))
}

// lineHash is hex SHA-256 of a line without its newline.
func lineHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readTail returns the last complete line of f (without newline, nil for an
// empty file) and the incomplete bytes after it, if any.
func readTail(f *os.File) (last, partial []byte, err error) {
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := info.Size()
	if size == 0 {
		return nil, nil, nil
	}
	n := min(size, 2*MaxLineBytes+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && err != io.EOF {
		return nil, nil, err
	}
	end := len(buf)
	if buf[end-1] != '\n' {
		i := bytes.LastIndexByte(buf, '\n')
		if i < 0 && n < size {
			return nil, nil, fmt.Errorf("last line longer than %d bytes", 2*MaxLineBytes)
		}
		partial = bytes.Clone(buf[i+1:])
		end = i + 1
		if end == 0 {
			return nil, partial, nil
		}
	}
	body := buf[:end-1]
	i := bytes.LastIndexByte(body, '\n')
	if i < 0 && int64(len(buf)) < size {
		return nil, nil, fmt.Errorf("last line longer than %d bytes", 2*MaxLineBytes)
	}
	return bytes.Clone(body[i+1:]), partial, nil
}
