package audit

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Encryption at rest (Options.EncryptionKey, audit.encryption_key_file).
// A sealed segment file holds the same lines as a plain one, sealed with
// AES-256-GCM (NIST SP 800-38D) in blocks, one block per write(2) of the
// writer (the records of one group commit):
//
//	sealMagic                          the file's first 16 bytes
//	'S' salt[32]                       a sealing session begins
//	'B' len[4] sealed[len]             a block: GCM(lines), len big-endian
//	'B' …
//	'S' salt[32]                       the next open of the file for writing
//	…
//
// Nonces never repeat under a key. Each session — every time a writer
// opens the file, and every new segment file — begins with 32 fresh
// random bytes (crypto/rand), and its blocks are sealed with its own key,
// HKDF-SHA256(key, salt, "telegate audit block key v1") (RFC 5869), and
// the nonce 0x00000000 || counter, the counter (8 bytes, big-endian)
// numbering the session's blocks from 0 in the writer's memory. Nothing
// on disk is read back to make a nonce, so a crash that loses unsynced
// blocks, a file cut or restored, or a trail started again cannot make a
// writer reuse one; two sessions share a key only if two random 256-bit
// salts collide. The additional data of a block is its frame header
// ('B' || len), so a block's length cannot be changed either.
//
// A reader derives each session's key from its salt and opens the blocks
// in order with the counter it expects, so a flipped byte, a block
// removed, repeated or moved, or the wrong key makes that block fail to
// open (reported with the file and the byte offset of the block). The
// lines inside are then checked like a plain trail's (chain, tree,
// checkpoints).
const (
	// sealMagic starts a sealed segment file. Its only newline is its
	// last byte, so a file cut inside it reads as an incomplete line.
	sealMagic = "telegate-aes-1\x00\n"
	// saltSize is the size of a session's salt.
	saltSize = 32
	// maxBlock caps a block's sealed length (a batch of maxBatch lines of
	// MaxLineBytes fits).
	maxBlock = maxBatch*MaxLineBytes + 4096
	// hkdfInfo binds the derived key to its use.
	hkdfInfo = "telegate audit block key v1"
	// frameSession and frameBlock are the frame kinds.
	frameSession = 'S'
	frameBlock   = 'B'
)

// EncryptionKeySize is the size of the key that seals segments (AES-256).
const EncryptionKeySize = 32

// sealer seals one session's blocks.
type sealer struct {
	aead  cipher.AEAD
	ctr   uint64
	nonce [12]byte
}

// newSession starts a sealing session under key: it returns the sealer
// and the 'S' frame to write before its first block.
func newSession(key []byte) (*sealer, []byte, error) {
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, nil, err
	}
	aead, err := sessionAEAD(key, salt)
	if err != nil {
		return nil, nil, err
	}
	return &sealer{aead: aead}, append([]byte{frameSession}, salt...), nil
}

// sessionAEAD is AES-256-GCM under the session key derived from key and salt.
func sessionAEAD(key, salt []byte) (cipher.AEAD, error) {
	if len(key) != EncryptionKeySize {
		return nil, fmt.Errorf("audit: encryption key is %d bytes, need %d", len(key), EncryptionKeySize)
	}
	k, err := hkdf.Key(sha256.New, key, salt, hkdfInfo, 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// seal appends the block frame of plain to dst.
func (s *sealer) seal(dst, plain []byte) []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], s.ctr)
	s.ctr++
	start := len(dst)
	dst = append(dst, frameBlock, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(plain)+s.aead.Overhead()))
	return s.aead.Seal(dst, s.nonce[:], plain, dst[start:start+5])
}

// unsealer reads a sealed file's lines (an io.Reader of the plaintext).
type unsealer struct {
	r    *bufio.Reader
	key  []byte
	file string
	aead cipher.AEAD
	ctr  uint64
	off  int64 // file offset of the next frame
	buf  []byte
	rest []byte // plaintext not yet returned
	// torn is set when the file ends inside a frame: the offset of that
	// frame and its bytes.
	torn   bool
	tornAt int64
	tail   []byte
}

// newUnsealer reads a sealed file from r, whose sealMagic was read.
func newUnsealer(r *bufio.Reader, key []byte, file string) *unsealer {
	return &unsealer{r: r, key: key, file: file, off: int64(len(sealMagic))}
}

// errSealed is a sealed block that does not open.
type errSealed struct {
	file   string
	offset int64
	reason string
}

func (e *errSealed) Error() string {
	return fmt.Sprintf("audit: %s: byte %d: %s", e.file, e.offset, e.reason)
}

// Read implements io.Reader.
func (u *unsealer) Read(p []byte) (int, error) {
	for len(u.rest) == 0 {
		if err := u.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, u.rest)
	u.rest = u.rest[n:]
	return n, nil
}

// next reads one frame.
func (u *unsealer) next() error {
	at := u.off
	kind, err := u.r.ReadByte()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return err
	}
	tear := func(got []byte) error {
		u.torn, u.tornAt, u.tail = true, at, append([]byte{kind}, got...)
		return io.EOF
	}
	switch kind {
	case frameSession:
		salt := make([]byte, saltSize)
		if n, err := io.ReadFull(u.r, salt); err != nil {
			return orTorn(err, func() error { return tear(salt[:n]) })
		}
		if u.aead, err = sessionAEAD(u.key, salt); err != nil {
			return err
		}
		u.ctr = 0
		u.off += 1 + saltSize
		return nil
	case frameBlock:
		var h [4]byte
		if n, err := io.ReadFull(u.r, h[:]); err != nil {
			return orTorn(err, func() error { return tear(h[:n]) })
		}
		size := binary.BigEndian.Uint32(h[:])
		if size > maxBlock {
			return &errSealed{u.file, at, fmt.Sprintf("a block of %d bytes: edited", size)}
		}
		if cap(u.buf) < int(size) {
			u.buf = make([]byte, size)
		}
		b := u.buf[:size]
		if n, err := io.ReadFull(u.r, b); err != nil {
			return orTorn(err, func() error { return tear(append(h[:], b[:n]...)) })
		}
		if u.aead == nil {
			return &errSealed{u.file, at, "a block before any session: edited"}
		}
		var nonce [12]byte
		binary.BigEndian.PutUint64(nonce[4:], u.ctr)
		plain, err := u.aead.Open(b[:0], nonce[:], b, []byte{frameBlock, h[0], h[1], h[2], h[3]})
		if err != nil {
			return &errSealed{u.file, at, fmt.Sprintf("block %d of its session does not decrypt: edited, removed, moved, or another encryption key", u.ctr)}
		}
		u.ctr++
		u.off += 5 + int64(size)
		u.rest = plain
		return nil
	}
	return &errSealed{u.file, at, fmt.Sprintf("unknown frame 0x%02x: edited", kind)}
}

// orTorn calls tear for an end of file inside a frame, and returns other
// errors as they are.
func orTorn(err error, tear func() error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return tear()
	}
	return err
}
