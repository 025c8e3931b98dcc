package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Segment files. The trail is one chain of lines kept in several files:
// the open file (Options.File, audit.file) and the segment files rotated
// out of it (Options.RotateSize, Options.RotateAge), named
//
//	<File>.<n>     n = 000001, 000002, … in the order they were rotated
//
// beside it. The chain (seq, prev, mac) and the Merkle tree go on across
// files as if they were one: a rotated file is the lines it held when it
// was rotated, so deleting, emptying, reordering or cutting a segment file
// breaks the chain where the next one starts. Each file is plain JSON
// lines or sealed (see sealMagic), independently.

// Trail names a trail on disk, to read every record of it in order.
type Trail struct {
	// File is the open file (audit.file); its rotated segment files are
	// File.NNNNNN beside it.
	File string
	// EncryptionKey opens sealed segment files (EncryptionKeySize bytes,
	// audit.encryption_key_file); nil reads plain files only, and a
	// sealed one is an error.
	EncryptionKey []byte
}

// segmentName is the name of the n-th rotated segment file of file.
func segmentName(file string, n int) string {
	return fmt.Sprintf("%s.%06d", file, n)
}

// rotated returns the rotated segment files of file in order and the
// highest number in use (0 when none).
func rotated(file string) ([]string, int, error) {
	ents, err := os.ReadDir(filepath.Dir(file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("audit: list segment files: %w", err)
	}
	type seg struct {
		n    int
		path string
	}
	var segs []seg
	base := filepath.Base(file) + "."
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok || e.IsDir() || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		segs = append(segs, seg{n, filepath.Join(filepath.Dir(file), e.Name())})
	}
	slices.SortFunc(segs, func(a, b seg) int { return a.n - b.n })
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.path
	}
	last := 0
	if len(segs) > 0 {
		last = segs[len(segs)-1].n
	}
	return out, last, nil
}

// Files returns the trail's files in the order of their records: the
// rotated segment files, then the open file when it exists.
// Errors: the directory cannot be read.
func (t Trail) Files() ([]string, error) {
	files, _, err := rotated(t.File)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(t.File); err == nil {
		files = append(files, t.File)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return files, nil
}

// Open returns a reader of every line of the trail in order, across its
// segment files, sealed files decrypted: the one way to read a trail's
// records (VerifyTrail checks what it reads; an export parses its lines).
// A trail with no file reads as empty. The reader's errors: a file that
// cannot be read; a *VerifyError for a file that breaks off inside a
// record when another file follows it, or a sealed block that does not
// open (naming the file and the block's byte offset), or a sealed file
// without EncryptionKey. A last file that breaks off inside a record (a
// crash while writing) ends the lines there: an incomplete plain line is
// returned as it is (VerifyTrail reports it), an incomplete sealed block
// is left out (TornTail).
func (t Trail) Open() (*Reader, error) {
	files, err := t.Files()
	if err != nil {
		return nil, err
	}
	return &Reader{t: t, files: files}, nil
}

// Reader reads a trail's lines in order (Trail.Open). It is an io.Reader
// of newline-terminated JSON lines; Close closes the open file.
type Reader struct {
	t     Trail
	files []string
	i     int // files[i] is being read
	f     *os.File
	src   io.Reader
	us    *unsealer // when files[i] is sealed
	// starts[j] is the offset in the lines read at which files[j] starts.
	starts []int64
	off    int64 // bytes of lines returned so far
	lines  int   // newlines returned so far
	lastNL int64 // offset just after the last newline returned
	// torn is the last file's incomplete sealed block, if any.
	torn     bool
	tornAt   int64
	tornTail []byte
	sealed   []bool // sealed[j]: files[j] is sealed
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.src == nil {
			if r.i >= len(r.files) {
				return 0, io.EOF
			}
			if err := r.openFile(); err != nil {
				return 0, err
			}
		}
		n, err := r.src.Read(p)
		if n > 0 {
			if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
				r.lastNL = r.off + int64(i) + 1
			}
			r.lines += bytes.Count(p[:n], []byte{'\n'})
			r.off += int64(n)
			return n, nil
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			var es *errSealed
			if errors.As(err, &es) {
				return 0, &VerifyError{Line: r.lines + 1, Offset: es.offset, File: es.file, Reason: es.reason}
			}
			return 0, fmt.Errorf("audit: read %s: %w", r.files[r.i], err)
		}
		if err := r.endFile(); err != nil {
			return 0, err
		}
	}
}

// openFile opens files[i] and finds whether it is sealed.
func (r *Reader) openFile() error {
	path := r.files[r.i]
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	r.f = f
	br := bufio.NewReaderSize(f, 64<<10)
	r.starts = append(r.starts, r.off)
	head, _ := br.Peek(len(sealMagic))
	sealed := string(head) == sealMagic
	r.sealed = append(r.sealed, sealed)
	if !sealed {
		r.src = br
		return nil
	}
	if r.t.EncryptionKey == nil {
		return &VerifyError{Line: r.lines + 1, File: path, Reason: "the file is encrypted: give the audit encryption key (audit.encryption_key_file, --encryption-key-file)"}
	}
	_, _ = br.Discard(len(sealMagic))
	r.us = newUnsealer(br, r.t.EncryptionKey, path)
	r.src = r.us
	return nil
}

// endFile closes files[i], checking that a file followed by another ends
// after a whole record.
func (r *Reader) endFile() error {
	path, last := r.files[r.i], r.i == len(r.files)-1
	r.f.Close()
	r.f, r.src = nil, nil
	us := r.us
	r.us = nil
	r.i++
	switch {
	case us != nil && us.torn && !last:
		return &VerifyError{Line: r.lines + 1, Offset: us.tornAt, File: path, Reason: fmt.Sprintf(
			"the segment file ends inside a block (%d bytes), and another file follows: it was cut", len(us.tail))}
	case us != nil && us.torn:
		r.torn, r.tornAt, r.tornTail = true, us.tornAt, us.tail
	case !last && r.off > r.lastNL:
		return &VerifyError{Line: r.lines + 1, Offset: r.lastNL - r.starts[len(r.starts)-1], File: path, Reason: fmt.Sprintf(
			"the segment file ends inside a record (%d bytes without a newline), and another file follows: it was cut", r.off-r.lastNL)}
	}
	return nil
}

// TornTail reports, once the reader has reached the end, an incomplete
// sealed block at the end of the last file (a crash while writing): the
// byte offset where it starts in that file and its bytes.
func (r *Reader) TornTail() (ok bool, offset int64, tail []byte) {
	return r.torn, r.tornAt, r.tornTail
}

// locate turns an offset in the lines read into the file holding it and
// the offset in that file's lines (for a plain file its byte offset; for
// a sealed one, the offset in its decrypted lines).
func (r *Reader) locate(off int64) (file string, at int64) {
	for j := len(r.starts) - 1; j >= 0; j-- {
		if off >= r.starts[j] {
			return r.files[j], off - r.starts[j]
		}
	}
	if len(r.files) > 0 {
		return r.files[0], off
	}
	return r.t.File, off
}

// lastFile is the file read last and the offset in the lines at which it
// starts; "" when no file was read.
func (r *Reader) lastFile() (string, int64, bool) {
	if len(r.starts) == 0 {
		return "", 0, false
	}
	j := len(r.starts) - 1
	return r.files[j], r.starts[j], r.sealed[j]
}

// Close closes the file being read.
func (r *Reader) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f, r.src = nil, nil
		return err
	}
	return nil
}
