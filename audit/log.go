package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Tuning of the writer. Records pass through a buffered channel of
// QueueSize events to one writer goroutine.
const (
	// QueueSize is the number of events that may wait for the writer.
	QueueSize = 4096
	// EnqueueTimeout is how long Record and Commit wait for room in a
	// full queue: then Record drops the event, counts it (Dropped) and
	// logs an error, and Commit returns ErrSaturated.
	EnqueueTimeout = 100 * time.Millisecond
	// CommitTimeout is how long Commit waits for its record's write(2)
	// once queued before it returns ErrNotConfirmed (at most commitTick
	// more: the watchdog's period).
	CommitTimeout = time.Second
	// MaxLineBytes caps one audit line. An event whose line would be longer
	// loses its Attrs (and gains attrs {"truncated":"true"}).
	MaxLineBytes = 64 << 10
	// maxBatch caps the records of one write(2) (and of one sealed
	// block); the writer writes a longer queue in several.
	maxBatch = 512
)

// Errors of Commit.
var (
	// ErrSaturated: the writer's queue stayed full for EnqueueTimeout.
	ErrSaturated = errors.New("audit: the trail's queue is full")
	// ErrNotConfirmed: the record was queued but its write was not
	// confirmed within CommitTimeout (it may still be written).
	ErrNotConfirmed = errors.New("audit: the trail's write was not confirmed in time")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("audit: log closed")
	// ErrEarlierRecordLost: a record the same request made before (an
	// Event passed to Record with the request's context: a sign-in, an
	// inspection finding, a break-glass grant) was dropped, so the
	// request cannot be recorded whole; its own record is not written.
	ErrEarlierRecordLost = errors.New("audit: a record of this request was dropped")
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

// Options configure OpenTrail. Zero durations and counts take the
// defaults of config (config.DefaultAuditFsyncInterval, …).
type Options struct {
	// File is the trail's path.
	File string
	// Key is the HMAC key, at least 32 bytes (see Key).
	Key []byte
	// CheckpointDir receives the signed checkpoints and the verifier key
	// file; "" writes none (and so cannot see a cut tail).
	CheckpointDir string
	// CheckpointKey is the note signer key that signs checkpoints
	// (CheckpointSigningKey); required with CheckpointDir.
	CheckpointKey string
	// CheckpointEvery: a checkpoint at the latest after this many records.
	CheckpointEvery int64
	// CheckpointInterval: a checkpoint at the latest this long after a
	// record.
	CheckpointInterval time.Duration
	// FsyncInterval: the longest time a written record waits for fsync.
	FsyncInterval time.Duration
	// NewSegmentReason, when set, starts a new segment at open (see
	// NewSegment) and lets a trail cut below its latest checkpoint be
	// opened: the segment's first record records the gap.
	NewSegmentReason string
	// Logger receives write errors and drop notices (never event
	// contents); nil: slog.Default().
	Logger *slog.Logger
	// RotateSize: the open file is rotated into a segment file (see
	// Trail) once a write takes it to this many bytes or more.
	RotateSize int64
	// RotateAge: the open file is rotated at the first write this long
	// after its first record.
	RotateAge time.Duration
	// EncryptionKey, when set (EncryptionKeySize bytes), seals the
	// segment files the log writes with AES-256-GCM (see sealMagic); a
	// plain open file is rotated first. Reading them needs the same key.
	EncryptionKey []byte
	// QueueSize is the number of events that may wait for the writer;
	// 0: the package's QueueSize.
	QueueSize int
	// Writer, when set, wraps the file for the writer's writes (a test
	// injects write errors with it).
	Writer func(io.Writer) io.Writer
	// Fsync, when set, replaces fsync(2) of the file (a test injects
	// fsync errors with it).
	Fsync func(*os.File) error
}

// Log is the append-only, hash-chained audit trail. Each line is one JSON
// object:
//
//	{"seq":N,"prev":"<hex sha256 of line N-1>",<event fields>,"mac":"<hex>"}
//
// where mac = HMAC-SHA256(key, prev || C) (RFC 2104) and C is the line's
// canonical JSON: the line itself with its trailing `,"mac":"…"` member
// removed (the bytes up to the mac, then "}"). Editing, deleting, inserting
// or reordering lines breaks a mac, a prev or a seq, which VerifyTrail
// reports with the line number. Each line is also a leaf of its segment's
// RFC 6962 Merkle tree, whose signed checkpoints (see Checkpoint) make
// lines cut from the end visible.
//
// Writing is group commit: one writer goroutine takes every event queued
// (QueueSize) and writes them with one write(2) per maxBatch records,
// then publishes the last record written (a ticket number) and sends a
// token to each caller of Commit of that batch parked on it; fsync
// follows within FsyncInterval, by another goroutine, which also writes a
// checkpoint of the fsynced records every CheckpointEvery records or
// CheckpointInterval, and on Close. Record queues an event without
// waiting for its write. A Log is safe for concurrent use.
type Log struct {
	path   string
	key    []byte
	logger *slog.Logger
	o      Options

	// The queue, under mu (Healthy takes it shared).
	mu     sync.RWMutex
	closed bool
	queue  []pending // records waiting for the writer, in order
	spare  []pending // the writer's last batch, reused as the next queue
	// waiters are the callers of Commit parked until the records in
	// queue are written (or the trail stopped), each on a token channel
	// of its own (capacity 1, reused: waiterPool) that gets one token:
	// from the writer once the batch holding its record is written, or
	// from the watchdog (watch) once it waited CommitTimeout. Whoever
	// sends takes it off its list.
	waiters         []waiter
	room            chan struct{} // closed when the writer takes the queue; nil: nobody waits for room
	awake           bool          // the writer has been kicked and has not gone idle
	queued          uint64        // tickets handed out: records ever queued
	inflightWaiters []waiter      // waiters of the batch being written
	kick            chan struct{} // wakes the writer (capacity 1)
	// writtenTicket is the last ticket written (its write(2) returned).
	writtenTicket atomic.Uint64

	done   chan struct{}
	stop   chan struct{} // stops the syncer and the watchdog
	synced chan struct{} // closed when the syncer returned

	f *os.File // replaced by rotate under syncMu
	// cur is f, for Healthy, which must not wait for an fsync.
	cur atomic.Pointer[os.File]
	w   io.Writer
	// writer state, owned by the writer goroutine (and Open before it).
	size    int64     // bytes in the open file
	started time.Time // the open file's first record
	rotN    int       // the highest segment file number in use
	seal    *sealer   // the sealing session of the open file, nil: plain
	hdr     []byte    // written before the next block (magic, session)
	sbuf    []byte    // a sealed write
	seq     uint64
	prev    []byte // hex SHA-256 of the last line, in prevBuf; empty before line 1
	prevBuf [2 * sha256.Size]byte
	segment uint64
	tree    tree
	buf     []byte
	mac     hash.Hash // HMAC-SHA256 with key, reset per line
	sum     [sha256.Size]byte
	total   uint64 // records written

	// head is the trail's state after the last write(2), for the
	// syncer, under headMu: records written in total, the open segment
	// and a copy of its tree (the syncer computes the root only when it
	// checkpoints). Copied in place: no allocation per write.
	headMu sync.Mutex
	head   treeHead

	// syncer state, under syncMu.
	syncMu     sync.Mutex
	syncedN    uint64
	synced0    treeHead // the syncer's copy of head
	ckpt       *checkpointSigner
	ckptSize   int64
	ckptTime   time.Time
	vkey       string
	ckptErrors atomic.Uint64
	ckpts      atomic.Uint64

	gen        atomic.Uint64
	written    atomic.Uint64
	dropped    atomic.Uint64
	errs       atomic.Uint64
	unconfirmd atomic.Uint64
	lastErr    atomic.Pointer[error]
	closeErr   error
	closeOnce  sync.Once
}

// waiter is a caller of Commit parked on ch since since.
type waiter struct {
	ch    chan struct{}
	since time.Time
}

// pending is one queued event.
type pending struct {
	e Event
}

// treeHead is the trail's state after a write(2): records written in
// total, and the open segment's tree.
type treeHead struct {
	total   uint64
	segment uint64
	tree    tree
}

// Open opens the trail at path with key and no checkpoints (OpenTrail).
func Open(path string, key []byte) (*Log, error) {
	return OpenTrail(Options{File: path, Key: key})
}

// OpenWithLogger is Open with the logger that receives write errors and
// drop notices (never event contents).
func OpenWithLogger(path string, key []byte, logger *slog.Logger) (*Log, error) {
	return OpenTrail(Options{File: path, Key: key, Logger: logger})
}

// TrailError is OpenTrail's refusal of a trail that does not verify
// against itself or its checkpoints: continuing its chain would make the
// break undetectable.
type TrailError struct {
	// File is the trail.
	File string
	// Err is the *VerifyError or CheckpointProblem found.
	Err error
}

// Error implements error, saying what to run next.
func (e *TrailError) Error() string {
	return fmt.Sprintf("audit: the trail %s does not verify, so telegate will not continue its chain: %v. Check the key, run `telegate audit verify` to see the damage; then, keeping the trail for investigation, `telegate audit new-segment --reason TEXT` starts a new segment that records the gap", e.File, e.Err)
}

// Unwrap returns Err.
func (e *TrailError) Unwrap() error { return e.Err }

// OpenTrail opens (or creates, with mode 0600 and parent directories 0700)
// the audit file o.File, verifies it whole (the chain with o.Key, the
// trees against the checkpoints in o.CheckpointDir) and continues its
// chain: the next line gets the next sequence number and the last line's
// hash as prev. An incomplete last line left by a crash (no trailing
// newline) is cut off, and the log records an "audit.recover" event with
// the number of bytes and their SHA-256, so the chain stays verifiable.
// With o.CheckpointDir, the verifier key file is written there when
// absent.
//
// Errors: a key shorter than 32 bytes; a file that cannot be opened or
// locked (another process writes it); a *TrailError for a trail that does
// not verify — edited, or cut below its latest checkpoint (unless
// o.NewSegmentReason starts a new segment), or a checkpoint directory
// holding a file not signed by o.CheckpointKey, or a verifier key file of
// another key.
func OpenTrail(o Options) (*Log, error) {
	path := o.File
	if len(o.Key) < 32 {
		return nil, fmt.Errorf("audit: key is %d bytes, need at least 32", len(o.Key))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = config.DefaultAuditFsyncInterval
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = config.DefaultAuditCheckpointEvery
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = config.DefaultAuditCheckpointInterval
	}
	if o.RotateSize <= 0 {
		o.RotateSize = config.DefaultAuditRotateSize
	}
	if o.RotateAge <= 0 {
		o.RotateAge = config.DefaultAuditRotateAge
	}
	if o.QueueSize <= 0 {
		o.QueueSize = QueueSize
	}
	if o.EncryptionKey != nil && len(o.EncryptionKey) != EncryptionKeySize {
		return nil, fmt.Errorf("audit: encryption key is %d bytes, need %d", len(o.EncryptionKey), EncryptionKeySize)
	}
	l := &Log{
		path: path, key: bytes.Clone(o.Key), logger: o.Logger, o: o,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		stop: make(chan struct{}), synced: make(chan struct{}), segment: 1,
	}
	var cps []Checkpoint
	if o.CheckpointDir != "" {
		var err error
		if cps, err = l.openCheckpoints(); err != nil {
			return nil, err
		}
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
	l.f, l.w = f, l.wrap(f)
	l.cur.Store(f)
	if l.ckpt != nil {
		// Only the trail's writer (it holds the lock) cuts a torn frame.
		if err := l.ckpt.start(cps); err != nil {
			l.f.Close()
			return nil, fmt.Errorf("audit: checkpoint log: %w", err)
		}
	}
	if err := l.resume(cps); err != nil {
		l.f.Close()
		_ = l.ckpt.close()
		return nil, err
	}
	go l.run()
	go l.syncLoop()
	go l.watch()
	return l, nil
}

// openCheckpoints prepares the signer, checks or writes the verifier key
// file and loads the checkpoints.
func (l *Log) openCheckpoints() ([]Checkpoint, error) {
	dir := l.o.CheckpointDir
	s, err := note.NewSigner(l.o.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint signing key: %w", err)
	}
	vkey, err := VerifierKey(l.o.CheckpointKey)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	l.ckpt, l.vkey = &checkpointSigner{dir: dir, signer: s, vkey: vkey}, vkey
	vpath := filepath.Join(dir, VerifierKeyFile)
	switch b, err := os.ReadFile(vpath); {
	case err == nil && !sameKey(string(b), vkey):
		return nil, &TrailError{l.path, fmt.Errorf("the checkpoint directory %s belongs to the key %s, not this node's %s: restore the node's checkpoint signing key or point audit.checkpoint_dir elsewhere", dir, bytes.TrimSpace(b), vkey)}
	case errors.Is(err, os.ErrNotExist):
		if err := writeFileSynced(dir, VerifierKeyFile, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("audit: write the verifier key: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("audit: read the verifier key: %w", err)
	}
	cps, problems, whole, err := loadCheckpoints(dir, v)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, &TrailError{l.path, problems[0]}
	}
	l.ckpt.whole = whole
	return cps, nil
}

// resume verifies the open file against cps and sets the writer's state
// to continue it, cutting an incomplete last line and starting a new
// segment when asked.
func (l *Log) resume(cps []Checkpoint) error {
	tr, err := Trail{File: l.path, EncryptionKey: l.o.EncryptionKey}.Open()
	if err != nil {
		return err
	}
	defer tr.Close()
	st, err := walk(tr, l.key, cps)
	placeError(tr, err)
	var ve *VerifyError
	cut := errors.As(err, &ve) && ve.cut
	switch {
	case cut && l.o.NewSegmentReason != "":
	case ve != nil:
		return &TrailError{l.path, err}
	case err != nil:
		return fmt.Errorf("audit: read %s: %w", l.path, err)
	}
	l.seq, l.prev, l.segment, l.tree = st.seq, append(l.prevBuf[:0], st.prev...), st.segment, st.tree
	l.syncedN = 0
	l.ckptSize = st.lastCheckpoint
	if err := l.openFile(tr, st); err != nil {
		return err
	}
	if r := l.o.NewSegmentReason; r != "" {
		var size int64
		var root tlog.Hash
		for _, c := range cps {
			if c.Segment == st.segment && c.Size >= size {
				size, root = c.Size, c.Root
			}
		}
		l.segment++
		l.tree = tree{}
		l.ckptSize = 0
		l.writeNow(Event{Type: SegmentEventType, Reason: r, Attrs: map[string]string{
			"segment":              strconv.FormatUint(l.segment, 10),
			"prev_segment":         strconv.FormatUint(st.segment, 10),
			"prev_records":         strconv.FormatInt(st.tree.n, 10),
			"prev_checkpoint_size": strconv.FormatInt(size, 10),
			"prev_checkpoint_root": base64.StdEncoding.EncodeToString(root[:]),
			"missing":              strconv.FormatInt(max(size-st.tree.n, 0), 10),
		}})
	}
	if torn := l.torn(tr, st); len(torn) > 0 {
		sum := sha256.Sum256(torn)
		l.writeNow(Event{Type: "audit.recover", Reason: "incomplete-last-line",
			Attrs: map[string]string{"bytes": fmt.Sprint(len(torn)), "sha256": hex.EncodeToString(sum[:])}})
	}
	if l.total > 0 {
		if p := l.lastErr.Load(); p != nil {
			return *p
		}
		if err := l.sync(true); err != nil {
			return err
		}
	}
	return nil
}

// torn is the incomplete last line or block of the open file that
// OpenTrail cut, if any.
func (l *Log) torn(tr *Reader, st *walkState) []byte {
	if ok, _, tail := tr.TornTail(); ok {
		return tail
	}
	return st.partial
}

// openFile prepares the open file for writing after the walk tr, st of
// the trail: it cuts an incomplete last line or block, learns the file's
// size, age and kind, rotates it when its kind (plain or sealed) is not
// the one configured, and starts a sealing session.
func (l *Log) openFile(tr *Reader, st *walkState) error {
	_, n, err := rotated(l.path)
	if err != nil {
		return err
	}
	l.rotN = n
	info, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: read %s: %w", l.path, err)
	}
	l.size = info.Size()
	_, start, sealed := tr.lastFile()
	if sealed && len(st.partial) > 0 {
		// A block that opens holds whole lines, unless it was made so.
		return &TrailError{l.path, &VerifyError{Line: st.lines + 1, File: l.path, Offset: st.offset - start, Reason: "a sealed block ends inside a record: edited"}}
	}
	cut := int64(-1)
	if ok, at, _ := tr.TornTail(); ok {
		cut = at
	} else if len(st.partial) > 0 {
		cut = st.offset - start
	}
	if cut >= 0 {
		if err := l.f.Truncate(cut); err != nil {
			return fmt.Errorf("audit: cut incomplete last line of %s: %w", l.path, err)
		}
		l.size = cut
	}
	l.started = time.Now()
	if l.size > 0 && st.lines > 0 {
		if t, ok := firstRecordTime(l.path, l.o.EncryptionKey); ok {
			l.started = t
		}
	}
	switch {
	case l.size > 0 && sealed != (l.o.EncryptionKey != nil):
		return l.rotate()
	case l.o.EncryptionKey == nil:
		return nil
	case l.size == 0:
		l.hdr = []byte(sealMagic)
	}
	s, frame, err := newSession(l.o.EncryptionKey)
	if err != nil {
		return fmt.Errorf("audit: start a sealing session: %w", err)
	}
	l.seal, l.hdr = s, append(l.hdr, frame...)
	return nil
}

// firstRecordTime is the time of the first record in file.
func firstRecordTime(file string, key []byte) (time.Time, bool) {
	r := &Reader{t: Trail{File: file, EncryptionKey: key}, files: []string{file}}
	defer r.Close()
	b, err := bufio.NewReader(r).ReadSlice('\n')
	if err != nil {
		return time.Time{}, false
	}
	var e struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(b, &e) != nil || e.Time.IsZero() {
		return time.Time{}, false
	}
	return e.Time, true
}

// wrap is f as the writer writes it (Options.Writer).
func (l *Log) wrap(f *os.File) io.Writer {
	if l.o.Writer != nil {
		return l.o.Writer(f)
	}
	return f
}

// fsync syncs the open file (Options.Fsync); under syncMu.
func (l *Log) fsync() error {
	if l.o.Fsync != nil {
		return l.o.Fsync(l.f)
	}
	return l.f.Sync()
}

// rotate makes the open file the next segment file and opens a new one:
// fsync, rename, create (locked), fsync of the directory. The writer's
// state (chain, tree) goes on unchanged. Under the writer (or Open).
func (l *Log) rotate() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.fsync(); err != nil {
		return err
	}
	l.syncedN = l.total
	name := segmentName(l.path, l.rotN+1)
	if _, err := os.Lstat(name); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: rotate %s: %s exists", l.path, name)
	}
	if err := os.Rename(l.path, name); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return fmt.Errorf("audit: rotate: lock %s: %w", l.path, err)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		f.Close()
		return fmt.Errorf("audit: rotate: %w", err)
	}
	old := l.f
	l.f, l.w = f, l.wrap(f)
	l.cur.Store(f)
	old.Close()
	l.rotN++
	l.size, l.started, l.seal, l.hdr = 0, time.Now(), nil, nil
	if l.o.EncryptionKey != nil {
		s, frame, err := newSession(l.o.EncryptionKey)
		if err != nil {
			return fmt.Errorf("audit: start a sealing session: %w", err)
		}
		l.seal, l.hdr = s, append([]byte(sealMagic), frame...)
	}
	return nil
}

// writeNow writes e at once (Open, before the writer starts).
func (l *Log) writeNow(e Event) {
	e.Time = time.Now().UTC()
	_ = l.writeBatch([]pending{{e: e}})
}

// SetGeneration sets the configuration generation stamped on events that
// carry none (Event.Generation 0).
func (l *Log) SetGeneration(id uint64) { l.gen.Store(id) }

// stamp sets e's time (UTC) and generation when zero.
func (l *Log) stamp(e *Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if e.Generation == 0 {
		e.Generation = l.gen.Load()
	}
}

// Record implements Sink. It stamps e.Time (UTC) and e.Generation when
// zero and queues e without waiting for its write; it never blocks longer
// than EnqueueTimeout. When the queue stays full, or after Close, the
// event is dropped, logged and counted (Dropped), and the request of ctx,
// if any, is marked (scope.Scope.MarkUnrecorded) so that its own record's
// Commit fails with ErrEarlierRecordLost: the request is then refused or
// counted as unrecorded like any other (audit.on_failure), never answered
// as if all of it were on the trail. Use Commit where the record must be
// written before going on.
func (l *Log) Record(ctx context.Context, e Event) {
	l.stamp(&e)
	if _, err := l.enqueue(e, nil); err != nil {
		l.drop(e, err)
		scope.From(ctx).MarkUnrecorded()
	}
}

// Commit implements Committer: it stamps and queues e like Record, then
// waits until e's line has been written to the file (write(2), not yet
// fsync: that follows within FsyncInterval). It waits at most
// EnqueueTimeout for room in the queue and CommitTimeout for the write,
// and does not stop for ctx (the record is written when it can be).
//
// Each caller parks on a token channel of its own, reused from call to
// call, that the writer sends to once the write(2) holding its record
// returned; none holds a timer of its own (the watchdog, every
// commitTick, sends the token of the waits past CommitTimeout).
//
// Errors (each counted, Unconfirmed): ErrSaturated, ErrNotConfirmed,
// ErrClosed, ErrEarlierRecordLost (a record ctx's request made was
// dropped; e is then not queued), or the write error that stopped the
// trail (it stays stopped until restart).
func (l *Log) Commit(ctx context.Context, e Event) error {
	if p := l.lastErr.Load(); p != nil {
		l.unconfirmd.Add(1)
		return *p
	}
	if scope.From(ctx).Unrecorded() {
		l.unconfirmd.Add(1)
		return ErrEarlierRecordLost
	}
	l.stamp(&e)
	w := waiter{waiterPool.Get().(chan struct{}), time.Now()}
	ticket, err := l.enqueue(e, &w)
	if err == nil {
		err = l.await(ticket, w)
	} else {
		waiterPool.Put(w.ch) // never listed: nobody sends on it
	}
	if err != nil {
		l.unconfirmd.Add(1)
	}
	return err
}

// outcome is the result of the write of the record with ticket, and
// whether it is known: written (nil), or the error that stopped the
// trail before it was.
func (l *Log) outcome(ticket uint64) (error, bool) {
	if l.writtenTicket.Load() >= ticket {
		return nil, true
	}
	if p := l.lastErr.Load(); p != nil {
		return *p, true
	}
	return nil, false
}

// commitTick is how often the watchdog looks at the callers of Commit
// that are still parked and wakes those parked for CommitTimeout: a
// parked Commit returns ErrNotConfirmed between CommitTimeout and
// CommitTimeout+commitTick after it parked, with no timer of its own.
const commitTick = CommitTimeout / 10

// waiterPool holds the token channels (capacity 1) of callers of Commit
// once they received their token, for reuse: a wait costs no allocation.
var waiterPool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// await waits for the write of the record with ticket, parked on w's
// token channel (listed with the record's batch by enqueue) until the
// writer or the watchdog sends its token.
func (l *Log) await(ticket uint64, w waiter) error {
	<-w.ch
	// The sender took w off its list: nobody else sends on w.ch.
	waiterPool.Put(w.ch)
	if err, ok := l.outcome(ticket); ok {
		return err
	}
	return ErrNotConfirmed // the watchdog's token: not written within CommitTimeout
}

// watch is the watchdog of parked callers of Commit: every commitTick it
// sends their token to those parked for CommitTimeout or longer, until
// the log is closed.
func (l *Log) watch() {
	expire := func(ws []waiter, now time.Time) []waiter {
		kept := ws[:0]
		for _, w := range ws {
			if now.Sub(w.since) >= CommitTimeout {
				w.ch <- struct{}{} // capacity 1, one token per wait: never blocks
				continue
			}
			kept = append(kept, w)
		}
		clear(ws[len(kept):])
		return kept
	}
	l.every(commitTick, func() {
		now := time.Now()
		l.mu.Lock()
		l.waiters = expire(l.waiters, now)
		l.inflightWaiters = expire(l.inflightWaiters, now)
		l.mu.Unlock()
	})
}

// every calls f every d until the log is closed.
func (l *Log) every(d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// Committer is a Sink whose records can be waited for: Commit returns
// once the record is written, or the error why it is not.
type Committer interface {
	Sink
	Commit(ctx context.Context, e Event) error
}

// enqueue queues e, waiting up to EnqueueTimeout for room, wakes the
// writer when it is idle, and returns e's ticket: its place among all
// records ever queued, from 1. With w, it lists w with the queued
// records' waiters in the same step, so the writer cannot write e
// before w waits for it.
func (l *Log) enqueue(e Event, w *waiter) (uint64, error) {
	var deadline time.Time
	l.mu.Lock()
	for len(l.queue) >= l.o.QueueSize {
		if l.closed {
			break
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(EnqueueTimeout)
		}
		if !now.Before(deadline) {
			l.mu.Unlock()
			return 0, ErrSaturated
		}
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.mu.Unlock()
		t := time.NewTimer(deadline.Sub(now))
		select {
		case <-room:
		case <-t.C:
		}
		t.Stop()
		l.mu.Lock()
	}
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	l.queue = append(l.queue, pending{e: e})
	l.queued++
	ticket := l.queued
	if w != nil {
		l.waiters = append(l.waiters, *w)
	}
	kick := !l.awake
	l.awake = true
	l.mu.Unlock()
	if kick {
		select {
		case l.kick <- struct{}{}: // capacity 1, sent only when the writer went idle
		default:
		}
	}
	return ticket, nil
}

func (l *Log) drop(e Event, why error) {
	n := l.dropped.Add(1)
	l.logger.Error("audit record dropped", "event_type", e.Type, "why", why.Error(), "dropped_total", n)
}

// Close stops accepting records, writes every queued one, fsyncs the file,
// writes a last checkpoint and closes the file. It returns the first error
// from writing, syncing, checkpointing or closing. Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		kick := !l.awake
		l.awake = true
		l.mu.Unlock()
		if kick {
			l.kick <- struct{}{}
		}
		<-l.done // the writer wrote everything queued
		close(l.stop)
		<-l.synced
		err := l.sync(true)
		if p := l.lastErr.Load(); p != nil && err == nil {
			err = *p
		}
		if cerr := l.ckpt.close(); err == nil {
			err = cerr
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
		l.closeErr = err
	})
	return l.closeErr
}

// Written is the number of records written since Open.
func (l *Log) Written() uint64 { return l.written.Load() }

// Queued is the number of records waiting for the writer now (not
// counting the batch being written).
func (l *Log) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// Dropped is the number of records dropped because the queue stayed full
// or the log was closed (export as telegate_audit_dropped_records_total).
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// WriteErrors is the number of failed writes or syncs.
func (l *Log) WriteErrors() uint64 { return l.errs.Load() }

// Unconfirmed is the number of Commit calls that returned an error: each
// a response refused, or served without its record (audit.on_failure).
func (l *Log) Unconfirmed() uint64 { return l.unconfirmd.Load() }

// Checkpoints is the number of checkpoints written since Open, and
// CheckpointErrors the number that could not be.
func (l *Log) Checkpoints() uint64 { return l.ckpts.Load() }

// CheckpointErrors is the number of checkpoints that could not be written.
func (l *Log) CheckpointErrors() uint64 { return l.ckptErrors.Load() }

// VerifierKeyString is the verifier key of the log's checkpoints (note
// format), "" without checkpoints.
func (l *Log) VerifierKeyString() string { return l.vkey }

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
		return ErrClosed
	}
	// The open file stays open while l.closed is false and the read lock
	// is held, but for a rotation, which replaces it before closing it.
	open, err := l.cur.Load().Stat()
	if errors.Is(err, os.ErrClosed) {
		open, err = l.cur.Load().Stat()
	}
	if err != nil {
		return fmt.Errorf("audit: %s: %w", l.path, err)
	}
	at, err := os.Stat(l.path)
	if err != nil || !os.SameFile(open, at) {
		return fmt.Errorf("audit: %s was removed or replaced while open; new records do not reach that path (restart to reopen it)", l.path)
	}
	return nil
}

// run is the writer: it takes everything queued, writes it (with one
// write(2) per maxBatch records), publishes the highest ticket written
// and wakes the callers of Commit parked on the batch; it sleeps while
// the queue is empty and returns once the log is closed and everything
// queued is written.
func (l *Log) run() {
	defer close(l.done)
	l.mu.Lock()
	for {
		for len(l.queue) == 0 {
			if l.closed {
				l.mu.Unlock()
				return
			}
			l.awake = false
			l.mu.Unlock()
			<-l.kick
			l.mu.Lock()
		}
		batch := l.queue
		l.queue, l.spare = l.spare, nil
		l.inflightWaiters, l.waiters = l.waiters, l.inflightWaiters[:0]
		if l.room != nil {
			close(l.room)
			l.room = nil
		}
		last := l.queued
		l.mu.Unlock()
		var err error
		for i := 0; i < len(batch) && err == nil; i += maxBatch {
			err = l.writeBatch(batch[i:min(i+maxBatch, len(batch))])
		}
		if err == nil {
			// The outcome is published before the batch's waiters get
			// their token, so each sees it.
			l.writtenTicket.Store(last)
		}
		clear(batch)
		l.mu.Lock()
		l.spare = batch[:0]
		for _, w := range l.inflightWaiters {
			w.ch <- struct{}{} // capacity 1, one token per wait: never blocks
		}
		clear(l.inflightWaiters)
		l.inflightWaiters = l.inflightWaiters[:0]
	}
}

// writeBatch appends a line for each event with one write and publishes
// the new head. After a failed write the trail stays stopped: its chain
// cannot continue past lines that may be missing.
func (l *Log) writeBatch(batch []pending) error {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	l.buf = l.buf[:0]
	for _, p := range batch {
		start := len(l.buf)
		var err error
		if l.buf, err = l.encode(l.buf, p.e); err != nil {
			l.buf = l.buf[:start]
			l.fail("encode", err)
			return *l.lastErr.Load()
		}
		b := l.buf[start : len(l.buf)-1]
		l.seq++
		sum := sha256.Sum256(b)
		l.prev = hex.AppendEncode(l.prevBuf[:0], sum[:])
		l.tree.add(b)
	}
	out := l.buf
	if l.seal != nil {
		l.sbuf = l.seal.seal(append(l.sbuf[:0], l.hdr...), l.buf)
		out = l.sbuf
	}
	if _, err := l.w.Write(out); err != nil {
		l.fail("write", err)
		return *l.lastErr.Load()
	}
	l.hdr = nil
	l.size += int64(len(out))
	l.total += uint64(len(batch))
	l.written.Add(uint64(len(batch)))
	l.headMu.Lock()
	l.head.total, l.head.segment, l.head.tree.n = l.total, l.segment, l.tree.n
	l.head.tree.frontier = append(l.head.tree.frontier[:0], l.tree.frontier...)
	l.headMu.Unlock()
	if cap(l.buf) > 4<<20 {
		l.buf, l.sbuf = nil, nil
	}
	if l.size >= l.o.RotateSize || time.Since(l.started) >= l.o.RotateAge {
		if err := l.rotate(); err != nil {
			l.fail("rotate", err)
		}
	}
	return nil
}

// encode appends the full line for e, newline included, to dst.
func (l *Log) encode(dst []byte, e Event) ([]byte, error) {
	start := len(dst)
	dst, err := appendLine(dst, l.seq+1, l.prev, &e)
	if err != nil {
		return dst[:start], err
	}
	if len(dst)-start > MaxLineBytes-100 {
		e.Attrs = map[string]string{"truncated": "true"}
		if dst, err = appendLine(dst[:start], l.seq+1, l.prev, &e); err != nil {
			return dst[:start], err
		}
	}
	c := dst[start:]
	if l.mac == nil {
		l.mac = hmac.New(sha256.New, l.key)
	}
	l.mac.Reset()
	l.mac.Write(l.prev)
	l.mac.Write(c)
	dst = append(dst[:len(dst)-1], `,"mac":"`...)
	dst = hex.AppendEncode(dst, l.mac.Sum(l.sum[:0]))
	return append(dst, "\"}\n"...), nil
}

// syncLoop fsyncs what was written every FsyncInterval, and checkpoints.
func (l *Log) syncLoop() {
	defer close(l.synced)
	l.every(l.o.FsyncInterval, func() { _ = l.sync(false) })
}

// sync fsyncs the records written so far and, when due (or final), writes
// a checkpoint of them: only fsynced records are ever checkpointed, so a
// crash cannot leave a checkpoint longer than the trail.
func (l *Log) sync(final bool) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	h := &l.synced0
	l.headMu.Lock()
	h.total, h.segment, h.tree.n = l.head.total, l.head.segment, l.head.tree.n
	h.tree.frontier = append(h.tree.frontier[:0], l.head.tree.frontier...)
	l.headMu.Unlock()
	if h.total == 0 {
		return nil
	}
	if h.total > l.syncedN {
		if err := l.fsync(); err != nil {
			l.fail("sync", err)
			return *l.lastErr.Load()
		}
		l.syncedN = h.total
	}
	if l.ckpt == nil || h.tree.n <= l.ckptSize {
		return nil
	}
	now := time.Now()
	if l.ckptTime.IsZero() {
		l.ckptTime = now
	}
	if !final && h.tree.n-l.ckptSize < l.o.CheckpointEvery && now.Sub(l.ckptTime) < l.o.CheckpointInterval {
		return nil
	}
	if err := l.ckpt.write(Checkpoint{Segment: h.segment, Size: h.tree.n, Root: h.tree.root(), Time: now.UTC()}); err != nil {
		l.ckptErrors.Add(1)
		l.logger.Error("audit checkpoint not written", "dir", l.ckpt.dir, "err", err)
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	l.ckpts.Add(1)
	l.ckptSize, l.ckptTime = h.tree.n, now
	return nil
}

func (l *Log) fail(op string, err error) {
	l.errs.Add(1)
	werr := fmt.Errorf("audit: %s %s: %w", op, l.path, err)
	l.lastErr.CompareAndSwap(nil, &werr)
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
