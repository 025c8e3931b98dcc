// Package secretfile writes the secrets telegate generates once in its
// data directory (keys, signing keys): readable by the owner only, never
// half written, never overwriting one that exists.
package secretfile

import (
	"os"
	"path/filepath"
)

// Write creates path (and its directory, 0700) with mode 0600,
// atomically; it fails with an error matching fs.ErrExist if path already
// exists.
func Write(path string, data []byte) error {
	return write(path, data, os.Link)
}

// Replace writes path as Write does, replacing the file that is there
// (atomically: a reader sees the old file or the new one).
func Replace(path string, data []byte) error {
	return write(path, data, os.Rename)
}

// write writes data to a temporary file beside path (0600) and moves it
// to path with put.
func write(path string, data []byte, put func(from, to string) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return put(tmp.Name(), path)
}
