package gitcommit

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const (
	// idxHeaderSize is the magic, the version and the fanout table of a
	// version 2 pack index.
	idxHeaderSize = 8 + 256*4
	// maxDeltaDepth bounds delta chains (git itself caps them at 4095).
	maxDeltaDepth = 4096
	// maxInflated bounds the bytes inflated from packs by one HeadTime.
	maxInflated = 64 << 20
)

// idxMagic starts a pack index of version 2 or later.
var idxMagic = []byte{0xff, 't', 'O', 'c'}

// pack is a pack file and its version 2 index. Files are opened for each
// lookup, so a repository with many packs does not hold many descriptors.
type pack struct {
	idxPath  string
	packPath string
	idxSize  int64
	fanout   [256]uint32
}

// loadPacks reads the fanout tables of the pack indexes in every object
// directory, once.
func (r *repo) loadPacks() error {
	if r.packsRead {
		return nil
	}
	r.packsRead = true
	for _, dir := range r.objectDirs {
		matches, err := filepath.Glob(filepath.Join(dir, "pack", "*.idx"))
		if err != nil {
			return fmt.Errorf("listing packs: %w", err)
		}
		for _, m := range matches {
			packPath := strings.TrimSuffix(m, ".idx") + ".pack"
			if _, err := os.Stat(packPath); err != nil {
				continue // an index without its pack, as git ignores it
			}
			p, err := openIndex(m, packPath)
			if err != nil {
				return err
			}
			r.packs = append(r.packs, p)
		}
	}
	return nil
}

// openIndex reads and checks the header and fanout table of a pack index.
func openIndex(idxPath, packPath string) (*pack, error) {
	f, err := os.Open(idxPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var head [idxHeaderSize]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return nil, fmt.Errorf("pack index %s: truncated header", idxPath)
	}
	if !bytes.Equal(head[:4], idxMagic) || binary.BigEndian.Uint32(head[4:8]) != 2 {
		return nil, fmt.Errorf("pack index %s: not a version 2 index", idxPath)
	}
	p := &pack{idxPath: idxPath, packPath: packPath, idxSize: fi.Size()}
	for i := range p.fanout {
		p.fanout[i] = binary.BigEndian.Uint32(head[8+4*i:])
		if i > 0 && p.fanout[i] < p.fanout[i-1] {
			return nil, fmt.Errorf("pack index %s: fanout table not sorted", idxPath)
		}
	}
	// Names, CRC32s and small offsets, then the two trailing checksums.
	if int64(idxHeaderSize)+int64(p.count())*28+2*20 > p.idxSize {
		return nil, fmt.Errorf("pack index %s: truncated", idxPath)
	}
	return p, nil
}

// count returns the number of objects in the pack.
func (p *pack) count() uint32 { return p.fanout[255] }

// findPacked returns the pack and offset holding object id, or a nil pack.
func (r *repo) findPacked(id []byte) (*pack, int64, error) {
	if err := r.loadPacks(); err != nil {
		return nil, 0, err
	}
	for _, p := range r.packs {
		off, ok, err := p.find(id)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return p, off, nil
		}
	}
	return nil, 0, nil
}

// find looks id up in the index by binary search within its fanout bucket
// and returns its offset in the pack.
func (p *pack) find(id []byte) (int64, bool, error) {
	f, err := os.Open(p.idxPath)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	n := int64(p.count())
	lo, hi := int64(0), int64(p.fanout[id[0]])
	if id[0] > 0 {
		lo = int64(p.fanout[id[0]-1])
	}
	name := make([]byte, len(id))
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := f.ReadAt(name, idxHeaderSize+mid*20); err != nil {
			return 0, false, fmt.Errorf("pack index %s: %w", p.idxPath, err)
		}
		switch c := bytes.Compare(name, id); {
		case c < 0:
			lo = mid + 1
		case c > 0:
			hi = mid
		default:
			off, err := p.offset(f, n, mid)
			return off, err == nil, err
		}
	}
	return 0, false, nil
}

// offset returns the pack offset of entry i, following the 8-byte table
// for offsets that do not fit in 31 bits.
func (p *pack) offset(f *os.File, n, i int64) (int64, error) {
	var b [8]byte
	if _, err := f.ReadAt(b[:4], idxHeaderSize+n*24+i*4); err != nil {
		return 0, fmt.Errorf("pack index %s: %w", p.idxPath, err)
	}
	v := binary.BigEndian.Uint32(b[:4])
	if v&0x80000000 == 0 {
		return int64(v), nil
	}
	pos := idxHeaderSize + n*28 + int64(v&0x7fffffff)*8
	if pos+8 > p.idxSize-2*20 {
		return 0, fmt.Errorf("pack index %s: large offset out of range", p.idxPath)
	}
	if _, err := f.ReadAt(b[:], pos); err != nil {
		return 0, fmt.Errorf("pack index %s: %w", p.idxPath, err)
	}
	off := binary.BigEndian.Uint64(b[:])
	if off > 1<<62 {
		return 0, fmt.Errorf("pack index %s: large offset out of range", p.idxPath)
	}
	return int64(off), nil
}

// packEntry is one entry of a pack file, inflated.
type packEntry struct {
	typ     int
	data    []byte // the object, or the delta for the two delta types
	baseOff int64  // objOfsDelta: offset of the base in the same pack
	baseID  []byte // objRefDelta: id of the base
}

// readPacked returns the type and content of the object at off in p,
// applying the deltas of its chain. depth counts the deltas already being
// resolved by callers (a REF_DELTA base is looked up like any object).
func (r *repo) readPacked(p *pack, off int64, depth int) (int, []byte, error) {
	f, size, err := openPackFile(p.packPath)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var deltas [][]byte
	for {
		if depth+len(deltas) > maxDeltaDepth {
			return 0, nil, fmt.Errorf("pack %s: delta chain longer than %d", p.packPath, maxDeltaDepth)
		}
		e, err := readEntry(f, size, off)
		if err != nil {
			return 0, nil, fmt.Errorf("pack %s at offset %d: %w", p.packPath, off, err)
		}
		if r.inflated += int64(len(e.data)); r.inflated > maxInflated {
			return 0, nil, fmt.Errorf("pack %s: more than %d bytes inflated resolving deltas", p.packPath, maxInflated)
		}
		var typ int
		var base []byte
		switch e.typ {
		case objOfsDelta:
			deltas = append(deltas, e.data)
			off = e.baseOff
			continue
		case objRefDelta:
			deltas = append(deltas, e.data)
			typ, base, err = r.readObjectUnchecked(hex.EncodeToString(e.baseID), depth+len(deltas))
			if err != nil {
				return 0, nil, err
			}
		default:
			typ, base = e.typ, e.data
		}
		for i := len(deltas) - 1; i >= 0; i-- {
			if base, err = applyDelta(base, deltas[i]); err != nil {
				return 0, nil, fmt.Errorf("pack %s: %w", p.packPath, err)
			}
		}
		return typ, base, nil
	}
}

// openPackFile opens a pack file and checks its header.
func openPackFile(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	var head [12]byte
	fi, err := f.Stat()
	if err == nil {
		_, err = f.ReadAt(head[:], 0)
	}
	if err != nil || string(head[:4]) != "PACK" || fi.Size() < 12+20 {
		f.Close()
		return nil, 0, fmt.Errorf("pack %s: not a pack file", path)
	}
	if v := binary.BigEndian.Uint32(head[4:8]); v != 2 && v != 3 {
		f.Close()
		return nil, 0, fmt.Errorf("pack %s: unsupported version %d", path, v)
	}
	return f, fi.Size(), nil
}

// readEntry reads and inflates the entry at off of a pack file of the
// given size (which ends with a 20-byte checksum).
func readEntry(f *os.File, size, off int64) (packEntry, error) {
	end := size - 20
	if off < 12 || off >= end {
		return packEntry{}, fmt.Errorf("offset out of range")
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, end-off), 4096)
	c, err := br.ReadByte()
	if err != nil {
		return packEntry{}, fmt.Errorf("reading entry header: %w", err)
	}
	e := packEntry{typ: int(c>>4) & 7}
	n := uint64(c & 15)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if shift > 60 {
			return packEntry{}, fmt.Errorf("entry size too long")
		}
		if c, err = br.ReadByte(); err != nil {
			return packEntry{}, fmt.Errorf("reading entry header: %w", err)
		}
		n |= uint64(c&0x7f) << shift
	}
	if n > maxObjectSize {
		return packEntry{}, fmt.Errorf("entry of %d bytes, more than the %d allowed", n, maxObjectSize)
	}
	switch e.typ {
	case objCommit, objTree, objBlob, objTag:
	case objOfsDelta:
		rel, err := readOfsDeltaOffset(br)
		if err != nil {
			return packEntry{}, err
		}
		if rel <= 0 || off-rel < 12 {
			return packEntry{}, fmt.Errorf("delta base offset out of range")
		}
		e.baseOff = off - rel
	case objRefDelta:
		e.baseID = make([]byte, 20)
		if _, err := io.ReadFull(br, e.baseID); err != nil {
			return packEntry{}, fmt.Errorf("reading delta base id: %w", err)
		}
	default:
		return packEntry{}, fmt.Errorf("invalid entry type %d", e.typ)
	}
	zr, err := zlib.NewReader(br)
	if err != nil {
		return packEntry{}, fmt.Errorf("inflating entry: %w", err)
	}
	defer zr.Close()
	// Reading one byte past the size reaches the end of the stream, where
	// zlib checks its checksum.
	if e.data, err = io.ReadAll(io.LimitReader(zr, int64(n)+1)); err != nil {
		return packEntry{}, fmt.Errorf("inflating entry: %w", err)
	}
	if uint64(len(e.data)) != n {
		return packEntry{}, fmt.Errorf("entry header says %d bytes, inflated %d", n, len(e.data))
	}
	return e, nil
}

// readOfsDeltaOffset reads the distance back to an OFS_DELTA base: big
// endian groups of 7 bits, each continuation adding one.
func readOfsDeltaOffset(br *bufio.Reader) (int64, error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("reading delta base offset: %w", err)
	}
	rel := int64(c & 0x7f)
	for c&0x80 != 0 {
		if rel >= 1<<55 {
			return 0, fmt.Errorf("delta base offset too long")
		}
		if c, err = br.ReadByte(); err != nil {
			return 0, fmt.Errorf("reading delta base offset: %w", err)
		}
		rel = (rel+1)<<7 | int64(c&0x7f)
	}
	return rel, nil
}
