package copier

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/intesys/ship-action/internal/layer"
)

// urlFileMode is the mode BuildKit gives a file downloaded by ADD.
const urlFileMode = 0o600

// addURL downloads src (ADD <url>), verifies --checksum, and places the file
// like a local non-directory source named after the URL's path. The body is
// spooled to an unlinked temporary file.
func (p *planner) addURL(ctx context.Context, src string) error {
	name := "__unnamed__"
	if u, err := url.Parse(src); err == nil {
		if b := path.Base(u.Path); b != "." && b != "/" {
			name = b
		}
	}
	var want, algo string
	var h hash.Hash = sha256.New()
	if p.req.Checksum != "" {
		var ok bool
		algo, want, ok = strings.Cut(p.req.Checksum, ":")
		switch {
		case !ok:
			return fmt.Errorf("%s %s: invalid checksum %q: want <algorithm>:<hex>", p.instr, src, p.req.Checksum)
		case algo == "sha256":
		case algo == "sha384":
			h = sha512.New384()
		case algo == "sha512":
			h = sha512.New()
		default:
			return fmt.Errorf("%s %s: unsupported checksum algorithm %q", p.instr, src, algo)
		}
		if _, err := hex.DecodeString(want); err != nil || len(want) != 2*h.Size() {
			return fmt.Errorf("%s %s: invalid checksum %q", p.instr, src, p.req.Checksum)
		}
	}

	client := p.req.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.instr, src, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: downloading %s: %w", p.instr, src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("%s: downloading %s: unexpected status %s", p.instr, src, resp.Status)
	}
	sp, err := newSpool()
	if err != nil {
		return err
	}
	n, open, err := sp.write(io.TeeReader(resp.Body, h))
	if err != nil {
		sp.f.Close()
		return fmt.Errorf("%s: downloading %s: %w", p.instr, src, err)
	}
	if want != "" {
		got := hex.EncodeToString(h.Sum(nil))
		if got != strings.ToLower(want) {
			sp.f.Close()
			return fmt.Errorf("%s: downloading %s: checksum mismatch: expected %s:%s, got %s:%s", p.instr, src, algo, want, algo, got)
		}
	}
	mtime := p.now
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			mtime = t.UTC()
		}
	}
	target, err := p.fileTarget(name)
	if err != nil {
		return err
	}
	o := p.createdOwner()
	mode := int64(urlFileMode)
	if p.req.Chmod != nil {
		mode = chmodBits(*p.req.Chmod)
	}
	p.put(layer.Entry{
		Header: &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     target,
			Size:     n,
			Mode:     mode,
			Uid:      o.UID,
			Gid:      o.GID,
			ModTime:  mtime,
		},
		Open: open,
	})
	return nil
}
