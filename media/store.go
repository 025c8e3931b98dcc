package media

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketVisits = []byte("visits")

// store keeps visits in <data_dir>/visits.db (bbolt), one record per visit,
// sealed with AES-256-GCM (the visit id is the additional data) because
// titles and display names may be PHI.
type store struct {
	db   *bolt.DB
	aead cipher.AEAD
}

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

func openStore(dir string, key []byte) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media: creating the data directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "visits.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("media: opening the visit store (is another telegate using %s?): %w", dir, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketVisits)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("media: preparing the visit store: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("telegate visits at rest v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		db.Close()
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &store{db: db, aead: aead}, nil
}

func (st *store) close() error { return st.db.Close() }

func (st *store) put(v *visit) error {
	plain, err := json.Marshal(v)
	if err != nil {
		return err
	}
	nonce := make([]byte, st.aead.NonceSize(), st.aead.NonceSize()+len(plain)+st.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := st.aead.Seal(nonce, nonce, plain, []byte(v.ID))
	return st.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVisits).Put([]byte(v.ID), sealed)
	})
}

func (st *store) delete(id string) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVisits).Delete([]byte(id))
	})
}

// load returns every stored visit; records that cannot be opened (a
// changed key, corruption) are skipped with a warning.
func (st *store) load(log *slog.Logger) ([]*visit, error) {
	var out []*visit
	err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVisits).ForEach(func(k, b []byte) error {
			ns := st.aead.NonceSize()
			if len(b) < ns {
				log.Warn("visit record too short; skipped", "visit", string(k))
				return nil
			}
			plain, err := st.aead.Open(nil, b[:ns], b[ns:], k)
			if err != nil {
				log.Warn("visit record cannot be decrypted (changed invite key?); skipped", "visit", string(k))
				return nil
			}
			v := new(visit)
			if err := json.Unmarshal(plain, v); err != nil || v.ID != string(k) {
				log.Warn("visit record malformed; skipped", "visit", string(k))
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
