package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Record is one record of a trail as read back: its place in the chain
// and its event.
type Record struct {
	// Line is the 1-based line of the record in its file.
	Line int
	// Seq is the record's sequence number, its chain position: it counts
	// the trail's records from 1 and never repeats.
	Seq uint64
	// Segment is the segment the record belongs to (from 1; NewSegment).
	Segment uint64
	// Hash is the hex SHA-256 of the line without its newline: the next
	// record's prev, so a copy of the record is tied to the chain.
	Hash string
	// Raw is the line as written (without the newline).
	Raw []byte
	// Event is the record's event.
	Event Event
}

// ReadTrail walks a trail from its first line like VerifyTrail, checking
// everything VerifyTrail checks, and calls fn with each record in order
// once its chain (and, with o.Key, its mac) has been checked. Records
// after the first bad line are never passed to fn, so what fn receives is
// a verified prefix of the trail; the Report and the error are
// VerifyTrail's. An error from fn ends the walk and is returned as it is.
// A record's Raw is fn's to keep.
func ReadTrail(r io.Reader, o VerifyOptions, fn func(Record) error) (Report, error) {
	return verifyTrail(r, o, func(lineNo int, seq, segment uint64, b []byte) error {
		rec, err := parseRecord(lineNo, seq, segment, b)
		if err != nil {
			return err
		}
		return fn(rec)
	})
}

// parseRecord decodes a checked line.
func parseRecord(lineNo int, seq, segment uint64, b []byte) (Record, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return Record{}, &VerifyError{Line: lineNo, Reason: "not an audit record: " + err.Error()}
	}
	return Record{Line: lineNo, Seq: seq, Segment: segment, Hash: lineHash(b), Raw: bytes.Clone(b), Event: l.Event}, nil
}

// Position is a place in a trail's chain: just after the record Seq,
// whose line hashes to Hash and ends at byte Offset (newline included) of
// the file. The zero Position is the start of a trail.
type Position struct {
	// Seq is the last record before the position (0: none).
	Seq uint64 `json:"seq"`
	// Hash is hex SHA-256 of that record's line ("" for Seq 0).
	Hash string `json:"hash"`
	// Offset is the byte offset just after that record's newline.
	Offset int64 `json:"offset"`
	// Segment is that record's segment (0 for Seq 0).
	Segment uint64 `json:"segment"`
	// File is the number of the trail file holding that record: n for the
	// rotated segment file audit.file.00000n, and for the open file the
	// number it gets when it is rotated (the rotated files' count + 1), so
	// a position stays true across rotation. 0: the open file as it was
	// (a position written before segment files, or Seq 0).
	File int `json:"file,omitempty"`
}

// After is the position just after rec, whose line ends at offset end.
func (rec Record) After(end int64) Position {
	return Position{Seq: rec.Seq, Hash: rec.Hash, Offset: end, Segment: rec.Segment}
}

// ReadFrom is the package ReadFrom over trail t, across its files: it
// reads on from pos in the file that holds it (Position.File, found again
// under its rotated name when the open file was rotated since), then in
// each later file from its start, the open file last; sealed files are
// read decrypted (Position.Offset is then an offset in the file's lines).
// The positions it passes to fn name their file (Position.File).
// Errors: those of ReadFrom, and ErrNotAtPosition (wrapped) when the file
// of pos is gone.
func (t Trail) ReadFrom(pos Position, limit int, fn func(Record, Position) error) (Position, error) {
	for attempt := 0; ; attempt++ {
		end, err := t.readFrom(pos, limit, fn)
		// The open file may have been rotated between finding it and
		// reading it: its records are then under its rotated name.
		if errors.Is(err, ErrNotAtPosition) && attempt == 0 && end == pos {
			continue
		}
		return end, err
	}
}

func (t Trail) readFrom(pos Position, limit int, fn func(Record, Position) error) (Position, error) {
	_, last, err := rotated(t.File)
	if err != nil {
		return pos, err
	}
	k := pos.File
	if k == 0 {
		k = last + 1 // the open file (or, for Seq 0, the first file)
		if pos.Seq == 0 {
			k = 1
		}
	}
	read := 0
	for {
		path := segmentName(t.File, k)
		open := false
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if k != last+1 {
				if k < last+1 && pos.Seq == 0 {
					k++ // numbering that does not start at 1
					continue
				}
				return pos, fmt.Errorf("%w: trail file %d (%s) is gone", ErrNotAtPosition, k, path)
			}
			path, open = t.File, true
		} else if err != nil {
			return pos, fmt.Errorf("audit: %w", err)
		}
		r := &Reader{t: t, files: []string{path}}
		if open {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return pos, nil // no open file yet
			}
		}
		var skip int64
		if pos.File == k || (pos.File == 0 && pos.Seq > 0) {
			skip = pos.Offset
		}
		if skip > 0 {
			if _, err := io.CopyN(io.Discard, r, skip); err != nil {
				r.Close()
				if errors.Is(err, io.EOF) {
					return pos, fmt.Errorf("%w: trail file %d ends before byte %d", ErrNotAtPosition, k, skip)
				}
				return pos, err
			}
		}
		base := pos
		base.Offset = skip
		end, err := ReadFrom(readerAtFrom{r, &skip}, base, limit-read, func(rec Record, next Position) error {
			next.File = k
			read++
			return fn(rec, next)
		})
		r.Close()
		if end.Seq != pos.Seq {
			end.File = k
		}
		pos = end
		if err != nil || open || (limit > 0 && read >= limit) {
			return pos, err
		}
		// A rotated file is complete: go on in the next one from its start.
		k++
		pos.File, pos.Offset = k, 0
	}
}

// readerAtFrom serves ReadFrom's io.ReaderAt from a stream already at
// offset at; ReadFrom reads it once, in order, from there.
type readerAtFrom struct {
	r  io.Reader
	at *int64
}

func (ra readerAtFrom) ReadAt(p []byte, off int64) (int, error) {
	if off != *ra.at {
		return 0, fmt.Errorf("audit: read at %d of a stream at %d", off, *ra.at)
	}
	n, err := ra.r.Read(p)
	*ra.at += int64(n)
	return n, err
}

// ErrNotAtPosition is ReadFrom's error for a trail whose chain does not
// continue from the position: the trail was replaced, cut or edited
// since the position was taken.
var ErrNotAtPosition = errors.New("audit: the trail does not continue from this position")

// ReadFrom reads up to limit complete records (all when limit <= 0) of the
// trail in r that follow pos, and calls fn with each and the position
// after it. It checks that the chain continues from pos (the first
// record's seq is pos.Seq+1 and its prev is pos.Hash) and that each
// further record follows the one before (seq, prev); it does not check
// macs or checkpoints (VerifyTrail does), and stops before an incomplete
// last line, which a writer may still be writing. It returns the position
// after the last record passed to fn.
// Errors: ErrNotAtPosition (wrapped, naming the line) for a trail that
// does not continue from pos or whose chain breaks after it; read errors;
// fn's error.
func ReadFrom(r io.ReaderAt, pos Position, limit int, fn func(Record, Position) error) (Position, error) {
	sr := io.NewSectionReader(r, pos.Offset, 1<<62)
	br := bufio.NewReaderSize(sr, 2*MaxLineBytes+1)
	segment := max(pos.Segment, 1)
	for n := 0; limit <= 0 || n < limit; n++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			return pos, nil
		}
		if err != nil {
			return pos, fmt.Errorf("audit: read after record %d: %w", pos.Seq, err)
		}
		b = b[:len(b)-1]
		seq, prev, err := parseLine(b, nil)
		if err != nil {
			return pos, fmt.Errorf("%w: the record after %d: %v", ErrNotAtPosition, pos.Seq, err)
		}
		if seq != pos.Seq+1 || prev != pos.Hash {
			return pos, fmt.Errorf("%w: after record %d (byte %d) comes record %d with another prev", ErrNotAtPosition, pos.Seq, pos.Offset, seq)
		}
		rec, err := parseRecord(0, seq, segment, b)
		if err != nil {
			return pos, err
		}
		if rec.Event.Type == SegmentEventType {
			if s, err := strconv.ParseUint(rec.Event.Attrs["segment"], 10, 64); err == nil {
				rec.Segment, segment = s, s
			}
		}
		next := rec.After(pos.Offset + int64(len(b)) + 1)
		if err := fn(rec, next); err != nil {
			return pos, err
		}
		pos = next
	}
	return pos, nil
}
