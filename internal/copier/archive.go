package copier

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/intesys/ship-action/internal/layer"
)

var (
	magicGzip  = []byte{0x1f, 0x8b, 0x08}
	magicBzip2 = []byte{0x42, 0x5a, 0x68}
	magicXz    = []byte{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress detects the compression of r by content, as moby's
// DecompressStream does (gzip, bzip2, xz, zstd, or none).
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, magicGzip):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, magicBzip2):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(magic, magicXz):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(xr), nil
	case bytes.HasPrefix(magic, magicZstd):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// isArchive reports whether the regular file src is a (possibly compressed)
// tar archive: its first header must read without error, as in BuildKit's
// isArchivePath. Any failure means "not an archive": the file is copied.
func (p *planner) isArchive(src string) bool {
	f, err := p.fsys.Open(src)
	if err != nil {
		return false
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil
}

// addArchive extracts the tar archive src into Dest when it is one, like
// BuildKit's unpack (moby's Untar): entries keep their metadata (uid/gid
// replaced by --chown, symlinks 0777), missing parents are added by Plan as
// Untar implies them, an entry escaping the destination is an error. File
// contents are spooled to an unlinked temporary file that the entries read
// from.
func (p *planner) addArchive(ctx context.Context, src string) (bool, error) {
	if !p.isArchive(src) {
		return false, nil
	}
	// BuildKit's unpack creates Dest with 0755 whatever --chmod says.
	p.mkdirAll(p.dest, defaultDirMode)
	f, err := p.fsys.Open(src)
	if err != nil {
		return false, fmt.Errorf("opening archive %s: %w", src, err)
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return false, fmt.Errorf("decompressing archive %s: %w", src, err)
	}
	defer r.Close()
	if err := p.extract(ctx, tar.NewReader(r), src); err != nil {
		return false, err
	}
	return true, nil
}

// spool is an unlinked temporary file holding file contents.
type spool struct {
	f   *os.File
	off int64
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "ship-copier-*")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	// Unlinked at once: the data lives as long as the open file, and nothing
	// is left behind whatever happens to the process.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("removing spool file: %w", err)
	}
	return &spool{f: f}, nil
}

// write copies r to the spool and returns a function opening that section.
func (s *spool) write(r io.Reader) (int64, func() (io.ReadCloser, error), error) {
	off := s.off
	n, err := io.Copy(s.f, r)
	s.off += n
	if err != nil {
		return n, nil, err
	}
	f := s.f
	return n, func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(f, off, n)), nil
	}, nil
}

func (p *planner) extract(ctx context.Context, tr *tar.Reader, src string) error {
	var sp *spool
	defer func() {
		if sp != nil && sp.off == 0 {
			sp.f.Close()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive %s: %w", src, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		rel, err := archivePath(hdr.Name)
		if err != nil {
			return fmt.Errorf("extracting %s: %w", src, err)
		}
		if rel == "." {
			continue // moby's Untar leaves the destination's own metadata alone
		}
		if strings.HasPrefix(path.Base(rel), ".wh.") {
			return fmt.Errorf("extracting %s: entry %q is a whiteout, which an image layer cannot hold as a file", src, hdr.Name)
		}
		h := &tar.Header{
			Name:       path.Join(p.dest, rel),
			Mode:       hdr.Mode & 0o7777,
			Uid:        hdr.Uid,
			Gid:        hdr.Gid,
			ModTime:    hdr.ModTime,
			Devmajor:   hdr.Devmajor,
			Devminor:   hdr.Devminor,
			PAXRecords: xattrRecords(hdr.PAXRecords),
		}
		if p.req.Chown != nil {
			h.Uid, h.Gid = p.req.Chown.UID, p.req.Chown.GID
		}
		e := layer.Entry{Header: h}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			h.Typeflag = tar.TypeReg
			if sp == nil {
				if sp, err = newSpool(); err != nil {
					return err
				}
			}
			n, open, err := sp.write(tr)
			if err != nil {
				return fmt.Errorf("extracting %s from %s: %w", hdr.Name, src, err)
			}
			h.Size, e.Open = n, open
		case tar.TypeDir:
			h.Typeflag = tar.TypeDir
		case tar.TypeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, hdr.Linkname
			h.Mode = symlinkMode // os.Symlink ignores the archive's mode
		case tar.TypeLink:
			target, err := archivePath(hdr.Linkname)
			if err != nil || target == "." {
				return fmt.Errorf("extracting %s: hard link %q to %q leaves the destination", src, hdr.Name, hdr.Linkname)
			}
			h.Typeflag, h.Linkname = tar.TypeLink, path.Join(p.dest, target)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			h.Typeflag = hdr.Typeflag
		default:
			return fmt.Errorf("extracting %s: entry %q has unsupported type %q", src, hdr.Name, hdr.Typeflag)
		}
		if h.Name == "." {
			continue
		}
		p.put(e)
	}
}

// archivePath cleans a tar entry name relative to the extraction directory
// and refuses one that climbs out of it (moby's breakoutError).
func archivePath(name string) (string, error) {
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("entry %q leaves the destination: %w", name, errBreakout)
	}
	return rel, nil
}

var errBreakout = errors.New("invalid tar entry path")

func xattrRecords(recs map[string]string) map[string]string {
	var out map[string]string
	for k, v := range recs {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
