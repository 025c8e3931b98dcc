package edgetls

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/sealbox"
	"github.com/telegate/telegate/internal/secretfile"
)

// Certificate storage at rest. Every value certmagic stores — ACME
// certificates and their private keys, the ACME account key, metadata,
// challenge tokens, local leaves — is sealed before it reaches the disk
// or Redis:
//
//	sealMagic | nonce(12) | AES-256-GCM(value) | tag(16)
//
// under a key derived from the storage key (tls.storage_key_file, a key
// derived from the session key, or <data_dir>/keys/tls-storage.key) with
// HKDF-SHA256 and the label storagePurpose (internal/sealbox), with the
// storage key name as additional data: a value copied under another name
// does not open. Lock records hold no secret and are not sealed.
//
// At start the storage key is checked against storageCheckKey, a value
// sealed by the first start: a key that does not open it stops the start
// (fail closed) instead of letting certmagic obtain new certificates over
// ones it cannot read. A file storage is then scanned: every plaintext
// value an earlier version wrote is sealed in place (migration), and a
// sealed value that does not open stops the start.
const (
	// sealMagic starts every sealed value (sealbox.Magic); a value
	// without it is plaintext (from before sealing) and is never served.
	sealMagic = sealbox.Magic
	// storagePurpose labels the key that seals certificate storage.
	storagePurpose = "telegate tls storage v1"
	// storageCheckKey is the storage key of the key check value.
	storageCheckKey = "telegate/storage-key-check"
	// storageCheckValue is what storageCheckKey holds, sealed.
	storageCheckValue = "telegate tls storage key check v1"
)

// Storage kinds (tls.storage).
const (
	StorageFile  = "file"
	StorageRedis = "redis"
)

// errStorageKey is a value that does not open under the storage key.
var errStorageKey = errors.New("does not open with the tls storage key (tls.storage_key_file, or the session key it is derived from, differs from the key that sealed it, or the value was changed)")

// sealedStorage is a certmagic.Storage whose values are sealed before the
// underlying storage sees them (see sealMagic). Locks are the underlying
// storage's.
type sealedStorage struct {
	certmagic.Storage
	try certmagic.TryLocker
	box *sealbox.Box
}

// sealedLeaseStorage is a sealedStorage whose underlying storage renews
// lock leases (certmagic.LockLeaseRenewer): RedisStorage.
type sealedLeaseStorage struct {
	*sealedStorage
	lease certmagic.LockLeaseRenewer
}

// RenewLockLease implements certmagic.LockLeaseRenewer.
func (s *sealedLeaseStorage) RenewLockLease(ctx context.Context, key string, d time.Duration) error {
	return s.lease.RenewLockLease(ctx, key, d)
}

// seal seals st (which must also lock with TryLock) under key.
func seal(st certmagic.Storage, key []byte) (certmagic.Storage, error) {
	box, err := sealbox.New(key, storagePurpose)
	if err != nil {
		return nil, fmt.Errorf("tls storage key: %w", err)
	}
	try, ok := st.(certmagic.TryLocker)
	if !ok {
		return nil, fmt.Errorf("tls storage %T cannot try a lock", st)
	}
	s := &sealedStorage{Storage: st, try: try, box: box}
	if l, ok := st.(certmagic.LockLeaseRenewer); ok {
		return &sealedLeaseStorage{sealedStorage: s, lease: l}, nil
	}
	return s, nil
}

func (s *sealedStorage) seal(key string, value []byte) []byte {
	out := make([]byte, 0, len(sealMagic)+len(value)+sealbox.Overhead)
	out = append(out, sealMagic...)
	return s.box.Seal(out, value, []byte(key))
}

func (s *sealedStorage) open(key string, b []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte(sealMagic))
	if !ok {
		return nil, fmt.Errorf("tls storage: %s is not sealed (plaintext from outside telegate); refusing it", key)
	}
	plain, err := s.box.Open(rest, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("tls storage: %s %w", key, errStorageKey)
	}
	return plain, nil
}

// Store seals value and stores it at key.
func (s *sealedStorage) Store(ctx context.Context, key string, value []byte) error {
	return s.Storage.Store(ctx, key, s.seal(key, value))
}

// Load returns the opened value at key: fs.ErrNotExist when there is
// none, an error when it is not sealed or does not open.
func (s *sealedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := s.Storage.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.open(key, b)
}

// Stat reports the size of the plaintext.
func (s *sealedStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ki, err := s.Storage.Stat(ctx, key)
	if err == nil && ki.IsTerminal && ki.Size >= int64(len(sealMagic)+sealbox.Overhead) {
		ki.Size -= int64(len(sealMagic) + sealbox.Overhead)
	}
	return ki, err
}

// TryLock implements certmagic.TryLocker.
func (s *sealedStorage) TryLock(ctx context.Context, name string) (bool, error) {
	return s.try.TryLock(ctx, name)
}

// checkKey opens the key check value: missing reports that there is
// none yet (markKey stores it once every check passed).
func (s *sealedStorage) checkKey(ctx context.Context) (missing bool, err error) {
	b, err := s.Load(ctx, storageCheckKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, err
	case string(b) != storageCheckValue:
		return false, fmt.Errorf("tls storage: %s %w", storageCheckKey, errStorageKey)
	}
	return false, nil
}

// markKey stores the key check value.
func (s *sealedStorage) markKey(ctx context.Context) error {
	return s.Store(ctx, storageCheckKey, []byte(storageCheckValue))
}

// sealedOf returns the sealedStorage inside st (seal's result).
func sealedOf(st certmagic.Storage) *sealedStorage {
	switch s := st.(type) {
	case *sealedStorage:
		return s
	case *sealedLeaseStorage:
		return s.sealedStorage
	}
	return nil
}

// plaintextFiles checks that every sealed value of the file storage fst
// opens and returns the keys of the plaintext ones (from before sealing),
// for sealFiles. Lock files and atomic writes' temporary files are left
// alone.
func (s *sealedStorage) plaintextFiles(fst *certmagic.FileStorage) ([]string, error) {
	var plain []string
	err := filepath.WalkDir(fst.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == fst.Path && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		rel, err := filepath.Rel(fst.Path, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == "locks" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, []byte(sealMagic)) {
			_, err := s.open(key, b)
			return err
		}
		plain = append(plain, key)
		return nil
	})
	return plain, err
}

// sealFiles seals the plaintext values keys of fst in place, each
// rewritten atomically (certmagic's FileStorage.Store).
func (s *sealedStorage) sealFiles(ctx context.Context, fst *certmagic.FileStorage, keys []string) error {
	for _, key := range keys {
		b, err := fst.Load(ctx, key)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, []byte(sealMagic)) {
			continue // sealed meanwhile by another process on this directory
		}
		if err := fst.Store(ctx, key, s.seal(key, b)); err != nil {
			return fmt.Errorf("tls storage: sealing %s: %w", key, err)
		}
	}
	return nil
}

// storageKeyFile returns the key that seals certificate storage when
// Options.StorageKey gives none: tls.storage_key_file, else (file storage
// only) <data_dir>/keys/tls-storage.key. A key generated now comes with
// save, which writes it (mode 0600) once the start checked everything;
// save is nil for a key read from a file.
func storageKeyFile(c *config.Config, kind string) (key []byte, save func() error, err error) {
	if f := c.TLS.StorageKeyFile; f != "" {
		k, err := config.ReadTLSStorageKeyFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("tls.storage_key_file: %w", err)
		}
		return k, nil, nil
	}
	if kind == StorageRedis {
		return nil, nil, errors.New("tls.storage \"redis\" needs tls.storage_key_file (or sessions.encryption_key_file to derive it from), the same on every node")
	}
	p := config.InDataDir(c.DataDir, config.TLSStorageKeyInDataDir)
	k, err := config.ReadTLSStorageKeyFile(p)
	if err == nil {
		return k, nil, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("tls storage key: %w", err)
	}
	k = make([]byte, sealbox.KeySize)
	_, _ = rand.Read(k)
	save = func() error {
		if err := secretfile.Write(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n")); err != nil {
			return fmt.Errorf("tls storage key: %w", err) // fs.ErrExist: another start made one meanwhile
		}
		return nil
	}
	return k, save, nil
}

// newFileStorage is certmagic's file storage in <dataDir>/certmagic.
func newFileStorage(dataDir string) *certmagic.FileStorage {
	return &certmagic.FileStorage{Path: filepath.Join(dataDir, "certmagic")}
}

// openStorage opens the node's sealed certificate storages: files, the
// sealed file storage in <data_dir>/certmagic (migrated, checked), and
// acme, the storage of ACME certificates (files itself, or Redis for
// tls.storage "redis").
func openStorage(ctx context.Context, c *config.Config, o Options, log *slog.Logger) (files, acme certmagic.Storage, closeFn func() error, err error) {
	kind := c.TLS.Storage
	if kind == "" {
		kind = StorageFile
	}
	if kind != StorageFile && kind != StorageRedis {
		return nil, nil, nil, fmt.Errorf("tls.storage %q is not one of file, redis", kind)
	}
	// The node's own file storage is sealed under the storage key in
	// file mode; with Redis, under tls.storage_key_file or the node's
	// generated key, so that a node moved from file to Redis storage
	// still opens what it kept (its local leaves) after the shared key
	// changed.
	fileKey := o.StorageKey
	var saveKey func() error
	if kind == StorageRedis || fileKey == nil {
		if fileKey, saveKey, err = storageKeyFile(c, StorageFile); err != nil {
			return nil, nil, nil, err
		}
	}
	key := fileKey // the Redis storage's
	if kind == StorageRedis {
		if key = o.StorageKey; key == nil {
			if key, _, err = storageKeyFile(c, kind); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	fst := newFileStorage(c.DataDir)
	if files, err = seal(fst, fileKey); err != nil {
		return nil, nil, nil, err
	}
	// Everything is checked before anything is written: a start that
	// fails leaves storage as it was.
	sf := sealedOf(files)
	fileMissing, err := sf.checkKey(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certificate storage %s: %w", fst.Path, err)
	}
	plain, err := sf.plaintextFiles(fst)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certificate storage %s: %w", fst.Path, err)
	}
	acme, closeFn = files, func() error { return nil }
	redisMissing := false
	if kind == StorageRedis {
		if o.Redis == nil {
			return nil, nil, nil, errors.New("tls.storage \"redis\": no Redis connection given (redis.addr)")
		}
		rs, err := OpenRedisStorage(ctx, *o.Redis)
		if err != nil {
			return nil, nil, nil, err
		}
		if acme, err = seal(rs, key); err == nil {
			redisMissing, err = sealedOf(acme).checkKey(ctx)
		}
		if err != nil {
			_ = rs.Close()
			return nil, nil, nil, fmt.Errorf("certificate storage on redis %s: %w", o.Redis.Conn.Addr, err)
		}
		closeFn = rs.Close
	}
	fail := func(err error) (certmagic.Storage, certmagic.Storage, func() error, error) {
		_ = closeFn()
		return nil, nil, nil, err
	}
	if saveKey != nil {
		if err := saveKey(); err != nil {
			return fail(err)
		}
	}
	if err := sf.sealFiles(ctx, fst, plain); err != nil {
		return fail(fmt.Errorf("certificate storage %s: %w", fst.Path, err))
	}
	if len(plain) > 0 {
		log.Info("sealed plaintext certificate storage files", "dir", fst.Path, "files", len(plain))
	}
	if fileMissing {
		if err := sf.markKey(ctx); err != nil {
			return fail(fmt.Errorf("certificate storage %s: %w", fst.Path, err))
		}
	}
	if redisMissing {
		if err := sealedOf(acme).markKey(ctx); err != nil {
			return fail(fmt.Errorf("certificate storage on redis %s: %w", o.Redis.Conn.Addr, err))
		}
	}
	return files, acme, closeFn, nil
}
