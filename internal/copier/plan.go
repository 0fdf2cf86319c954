package copier

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/patternmatcher"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
)

// defaultDirMode is the mode BuildKit gives the directories it creates.
const defaultDirMode = 0o755

// symlinkMode is the mode of every symlink: Linux has no other, and BuildKit's
// layers show the file system it copied or unpacked into.
const symlinkMode = 0o777

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// Request describes one COPY or ADD instruction.
type Request struct {
	// Sources are the source paths as written after ARG expansion. Local
	// sources may hold path.Match wildcards (BuildKit has no "**"); a
	// wildcard that matches nothing copies nothing, without error, as in
	// BuildKit. With Add, http:// and https:// URLs are downloaded.
	Sources []string
	// Dest is the destination as written: relative paths are relative to
	// WorkDir; a trailing "/" (or "/.", ".") means a directory.
	Dest string
	// WorkDir is the stage's absolute working directory ("/" when unset).
	WorkDir string
	// Context is the build context, used when From is nil.
	Context *Context
	// From is the root of the source stage or image for COPY --from. Its
	// FileInfo.Sys() may be a *tar.Header, which gives ownership, device
	// numbers and extended attributes. Symlinks are resolved inside it, as
	// in a chroot, when it implements fs.ReadLinkFS.
	From fs.FS
	// Target is the destination stage's current file system (nil: empty).
	// Plan looks up, at most once each, the parent directories of the
	// entries it emits and the directories of Dest (to copy their metadata
	// into the layer, or to create them), and Dest itself when a
	// non-directory source's Dest has no trailing slash (is it an existing
	// directory?). Nothing else is looked up. Paths are relative
	// ("usr/local"). Lookups use Lstat when Target implements
	// fs.ReadLinkFS, else Stat; where the answer is a symlink and Plan must
	// know whether Dest is a directory, Stat follows it inside the file
	// system, as BuildKit's os.Stat does. A FileInfo whose Sys() is a
	// *tar.Header gives the directory's owner and special mode bits.
	Target fs.StatFS
	// FollowDestSymlinks resolves Dest through Target's symlinks first, as
	// BuildKit writes through them (Target must implement fs.ReadLinkFS;
	// one Lstat per existing component of Dest, which may read base
	// layers). Without it, Dest is taken literally: on a merged-/usr base,
	// COPY x /bin/ then yields an entry bin/x, which hides /usr/bin once an
	// overlay snapshotter applies the layer (BuildKit writes usr/bin/x).
	// Ignored with --link, which never looks at Target.
	FollowDestSymlinks bool
	// ContextFiles, when not nil, receives for each regular file copied
	// from Context (not From, not ADD archives or URLs) its entry name
	// (image path) and its path in the build context, so that a finding
	// in that file can point at the repository file.
	ContextFiles map[string]string
	// Chown is --chown. nil: files from the context are 0:0 and files from
	// From keep their uid and gid.
	Chown *Owner
	// Chmod is --chmod: Unix permission bits as parsed from octal (0o4755
	// sets setuid; Go's fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky count
	// too). nil keeps the source mode.
	Chmod *fs.FileMode
	// Excludes are the --exclude patterns (patternmatcher syntax).
	Excludes []string
	// Add selects ADD semantics: local tar archives (plain, gzip, bzip2,
	// xz, zstd: detected by content) are extracted into Dest, and http(s)
	// URLs are downloaded (not extracted).
	Add bool
	// Checksum is ADD --checksum=<algorithm>:<hex> for a URL source.
	Checksum string
	// HTTPClient downloads URLs (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Link is COPY --link: the copy is made on an empty file system, so
	// Target is never consulted and every parent directory is emitted as
	// created, as in BuildKit's layer. As in BuildKit, --link with --chmod
	// is an ordinary copy.
	Link bool
	// Instruction is "COPY" or "ADD", for messages (default from Add).
	Instruction string
}

// Plan returns the layer entries the instruction adds, sorted by name: the
// copied files and, as in the diff BuildKit takes of its snapshot, every
// parent directory of them (the root excepted) and every directory the copy
// creates, even an empty one. Parent directories are not left implicit: an
// overlay snapshotter lets a directory in an upper layer replace the lower
// one's metadata, so a layer holding "tmp/x" without "tmp" would turn a
// base's 1777 /tmp into a 0755 one.
//   - A directory that exists in Target keeps its metadata (mode, owner,
//     mtime, xattrs), as BuildKit leaves it alone.
//   - A missing directory of the destination is created as BuildKit's
//     MkdirAll does: the --chmod mode (else 0755), the --chown owner (else
//     root). One implied by an ADD archive's entry is 0755 and root-owned,
//     as in moby's Untar. In a setgid directory, a new directory gets the
//     setgid bit and, unless chowned, that directory's group (Linux mkdir).
//   - With --link nothing exists: every parent is created.
//
// Names follow layer.Entry rules. Files keep their source ModTime;
// directories Plan creates, and URL downloads without Last-Modified, get the
// current time (a layer epoch clamps both). Symlinks are 0777, as on Linux.
//
// Entries of local sources read lazily: Open reads from Context or From when
// called. ADD archives and URLs are read during Plan and spooled to unlinked
// temporary files, so nothing is left on disk.
//
// Known differences from BuildKit: hard links are kept only within one
// source (across sources they are separate files); a source that leaves the
// build context is an error (BuildKit silently takes it relative to the
// context root); a parent of an entry that is a symlink in Target (when
// Dest was not resolved through Target's symlinks) becomes a directory.
func Plan(ctx context.Context, req Request) ([]layer.Entry, error) {
	p, err := newPlanner(req)
	if err != nil {
		return nil, err
	}
	for _, src := range req.Sources {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if isURL(src) {
			if !req.Add {
				return nil, fmt.Errorf("%s %s: source can't be a URL for COPY", p.instr, src)
			}
			if err := p.addURL(ctx, src); err != nil {
				return nil, err
			}
			continue
		}
		if err := p.addLocal(ctx, src); err != nil {
			return nil, err
		}
	}
	if err := p.addParents(); err != nil {
		return nil, err
	}
	return p.result(), nil
}

type planner struct {
	req    Request
	instr  string
	fsys   fs.FS
	link   bool // --link without --chmod: the copy starts from an empty file system
	clamp  bool // symlinks resolved as in a chroot (From) rather than refused (context)
	where  string
	dest   string // clean, relative, "." for the root
	dirDst bool   // Dest names a directory (trailing slash)
	now    time.Time

	excl    *patternmatcher.PatternMatcher
	entries map[string]layer.Entry
	links   map[string]string     // hard link identity → first entry name, per source
	mkdirs  map[string]int64      // directories MkdirAll ran on → mode if created
	looks   map[string]lookResult // Target: Lstat (Stat without fs.ReadLinkFS)
	stats   map[string]bool       // Target: is a directory, through a final symlink
}

func newPlanner(req Request) (*planner, error) {
	p := &planner{
		req:     req,
		instr:   req.Instruction,
		now:     time.Now().UTC(),
		entries: map[string]layer.Entry{},
		mkdirs:  map[string]int64{},
		looks:   map[string]lookResult{},
		stats:   map[string]bool{},
	}
	// BuildKit only links (copies onto scratch and merges) without --chmod.
	p.link = req.Link && req.Chmod == nil
	if p.instr == "" {
		p.instr = "COPY"
		if req.Add {
			p.instr = "ADD"
		}
	}
	switch {
	case req.From != nil:
		p.fsys, p.clamp, p.where = req.From, true, "source"
	case req.Context != nil:
		p.fsys, p.where = req.Context, "build context"
	}
	if req.Checksum != "" {
		if !req.Add {
			return nil, fmt.Errorf("%s: checksum can't be specified for COPY", p.instr)
		}
		if len(req.Sources) != 1 {
			return nil, fmt.Errorf("%s: checksum can't be specified for multiple sources", p.instr)
		}
		if !isURL(req.Sources[0]) {
			return nil, fmt.Errorf("%s: checksum requires HTTP(S) sources", p.instr)
		}
	}
	if len(req.Excludes) > 0 {
		pm, err := patternmatcher.New(req.Excludes)
		if err != nil {
			return nil, fmt.Errorf("parsing --exclude patterns: %w", err)
		}
		p.excl = pm
	}
	p.dest, p.dirDst = destPath(req.Dest, req.WorkDir)
	if rl, ok := req.Target.(fs.ReadLinkFS); ok && req.FollowDestSymlinks && !p.link {
		d, err := resolveDest(cachedTarget{ReadLinkFS: rl, p: p}, p.dest)
		if err != nil {
			return nil, fmt.Errorf("%s: resolving destination /%s: %w", p.instr, p.dest, err)
		}
		p.dest = d
	}
	return p, nil
}

// destPath resolves Dest against the working directory like BuildKit's
// pathRelativeToWorkingDir: "", "." and paths ending in "/" or "/." are
// directories.
func destPath(dest, workdir string) (string, bool) {
	dir := dest == "" || dest == "." || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.")
	if !strings.HasPrefix(dest, "/") {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	rel := strings.TrimPrefix(path.Clean("/"+dest), "/")
	if rel == "" {
		rel = "."
	}
	return rel, dir
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func (p *planner) result() []layer.Entry {
	p.normaliseLinks()
	names := make([]string, 0, len(p.entries))
	for n := range p.entries {
		names = append(names, n)
	}
	slices.SortFunc(names, comparePaths)
	out := make([]layer.Entry, 0, len(names))
	for _, n := range names {
		out = append(out, p.entries[n])
	}
	return out
}

// comparePaths orders paths as a directory walk visits them (and as the
// layer writer does): component by component.
func comparePaths(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}

// normaliseLinks makes the first name of each group of hard links, in walk
// order, the regular file and the others links to it: a tar reader must
// meet a link's target before the link.
func (p *planner) normaliseLinks() {
	groups := map[string][]string{}
	for name, e := range p.entries {
		if e.Header.Typeflag != tar.TypeLink {
			continue
		}
		t, ok := p.entries[e.Header.Linkname]
		if !ok || t.Header.Typeflag != tar.TypeReg {
			continue
		}
		groups[e.Header.Linkname] = append(groups[e.Header.Linkname], name)
	}
	for target, links := range groups {
		first := slices.MinFunc(append(links, target), comparePaths)
		if first != target {
			reg := p.entries[target]
			h := *reg.Header
			h.Name = first
			linkHdr := *p.entries[first].Header
			linkHdr.Name, linkHdr.Linkname = target, first
			p.entries[first] = layer.Entry{Header: &h, Open: reg.Open}
			p.entries[target] = layer.Entry{Header: &linkHdr}
		}
		for _, l := range links {
			if l != first {
				p.entries[l].Header.Linkname = first
			}
		}
	}
}

func (p *planner) put(e layer.Entry) {
	p.entries[e.Header.Name] = e
}

// notFound is the one-line error for a missing source.
func (p *planner) notFound(src string) error {
	return fmt.Errorf("%s failed: file not found in %s: %q", p.instr, p.where, src)
}

func (p *planner) outside(src string) error {
	return fmt.Errorf("%s source %s is outside the build context", p.instr, src)
}

// sourceError turns a resolution error into the instruction's message.
func (p *planner) sourceError(src string, err error) error {
	switch {
	case errors.Is(err, errOutside):
		return p.outside(src)
	case errors.Is(err, fs.ErrNotExist):
		return p.notFound(src)
	}
	return fmt.Errorf("%s: reading source %s: %w", p.instr, src, err)
}

// match is one source path after wildcard expansion.
type match struct {
	path string // relative, unresolved (its base names the copy)
}

func (p *planner) addLocal(ctx context.Context, src string) error {
	if p.fsys == nil {
		return fmt.Errorf("%s %s: no build context", p.instr, src)
	}
	// Like fsutil's copier, hard links are kept within one source.
	p.links = map[string]string{}
	clean := path.Clean(src)
	if strings.HasPrefix(clean, "/") {
		// BuildKit takes an absolute source relative to the context root.
		clean = strings.TrimPrefix(clean, "/")
	}
	if !p.clamp && (clean == ".." || strings.HasPrefix(clean, "../")) {
		return p.outside(src)
	}
	rel := strings.TrimPrefix(path.Clean("/"+clean), "/")
	if rel == "" {
		rel = "."
	}
	lstat, readlink := fsPrimitives(p.fsys)

	var matches []match
	base, pattern := splitWildcards(rel)
	if pattern == "" {
		matches = []match{{path: rel}}
	} else {
		resolvedBase, err := resolvePath(lstat, readlink, base, true, p.clamp)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // an empty wildcard is not an error in BuildKit
		case err != nil:
			return p.sourceError(src, err)
		}
		ms, err := p.glob(resolvedBase, pattern)
		if err != nil {
			return p.sourceError(src, err)
		}
		for _, m := range ms {
			matches = append(matches, match{path: path.Join(resolvedBase, m)})
		}
	}

	for _, m := range matches {
		if err := ctx.Err(); err != nil {
			return err
		}
		resolved, err := resolvePath(lstat, readlink, m.path, true, p.clamp)
		if err != nil {
			return p.sourceError(src, err)
		}
		fi, err := lstatFS(p.fsys, resolved)
		if err != nil {
			return p.sourceError(src, err)
		}
		if p.req.Add && fi.Mode().IsRegular() {
			ok, err := p.addArchive(ctx, resolved)
			if err != nil {
				return fmt.Errorf("%s %s: %w", p.instr, src, err)
			}
			if ok {
				continue
			}
		}
		if fi.IsDir() {
			if err := p.copyDir(ctx, resolved); err != nil {
				return fmt.Errorf("%s %s: %w", p.instr, src, err)
			}
			continue
		}
		name := path.Base(m.path)
		if name == "." {
			name = path.Base(resolved)
		}
		target, err := p.fileTarget(name)
		if err != nil {
			return err
		}
		e, err := p.entryFor(resolved, target, fi)
		if err != nil {
			return fmt.Errorf("%s %s: %w", p.instr, src, err)
		}
		p.put(e)
	}
	return nil
}

// excluded reports whether --exclude drops rel, a path relative to a copied
// directory. As in BuildKit (fsutil's copier), the patterns are matched only
// inside directory sources: a file named by a source or matched by its
// wildcard is copied even when a pattern matches its name.
func (p *planner) excluded(rel string) bool {
	if p.excl == nil {
		return false
	}
	m, err := p.excl.MatchesOrParentMatches(rel)
	return err == nil && m
}

// glob lists the paths below base that match pattern, like fsutil's
// resolveWildcards: a match is not descended into, symlinks are not
// followed, order is lexical.
func (p *planner) glob(base, pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	depth := strings.Count(pattern, "/") + 1
	var out []string
	var walk func(dir, rel string, d int) error
	walk = func(dir, rel string, d int) error {
		ents, err := readDirFS(p.fsys, dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			r := path.Join(rel, e.Name())
			if ok, _ := path.Match(pattern, r); ok {
				out = append(out, r)
				continue
			}
			if e.IsDir() && d < depth {
				if err := walk(path.Join(dir, e.Name()), r, d+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(base, "", 1); err != nil {
		return nil, err
	}
	return out, nil
}

// splitWildcards splits p at the first element holding a wildcard.
func splitWildcards(p string) (string, string) {
	parts := strings.Split(p, "/")
	for i, c := range parts {
		if containsWildcards(c) {
			base := path.Join(parts[:i]...)
			if base == "" {
				base = "."
			}
			return base, strings.Join(parts[i:], "/")
		}
	}
	return p, ""
}

func containsWildcards(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// fileTarget is where a non-directory source named name lands, following
// fsutil's Copy and prepareTargetDir.
func (p *planner) fileTarget(name string) (string, error) {
	if p.dirDst {
		p.mkdirAll(p.dest, p.createdDirMode())
		return path.Join(p.dest, name), nil
	}
	p.mkdirAll(path.Dir(p.dest), p.createdDirMode())
	if p.dest == "." {
		return name, nil
	}
	isDir, err := p.isDir(p.dest)
	if err != nil {
		return "", err
	}
	if isDir {
		return path.Join(p.dest, name), nil
	}
	return p.dest, nil
}

// isDir reports whether dir exists as a directory after the entries planned
// so far: planned entries and directories first, then Target (never with
// --link), following a final symlink as BuildKit's os.Stat does.
func (p *planner) isDir(dir string) (bool, error) {
	if dir == "." {
		return true, nil
	}
	if e, ok := p.entries[dir]; ok {
		return e.Header.Typeflag == tar.TypeDir, nil
	}
	if _, ok := p.mkdirs[dir]; ok {
		return true, nil
	}
	return p.targetIsDir(dir)
}

// createdDirMode is the mode of the directories a COPY creates: BuildKit uses
// the --chmod value for them (permission bits only), else 0755.
func (p *planner) createdDirMode() int64 {
	if p.req.Chmod != nil {
		return int64(*p.req.Chmod & 0o777)
	}
	return defaultDirMode
}

// createdOwner is the owner of directories the copy creates.
func (p *planner) createdOwner() Owner {
	if p.req.Chown != nil {
		return *p.req.Chown
	}
	return Owner{}
}

// mkdirAll records that the copy runs fsutil's MkdirAll on dir with mode:
// whichever of dir and its ancestors is missing when the plan is complete is
// created with that mode and the --chown owner (see addParents). The first
// call for a directory decides its mode, as the first MkdirAll creates it.
func (p *planner) mkdirAll(dir string, mode int64) {
	for d := dir; d != "."; d = path.Dir(d) {
		if _, ok := p.mkdirs[d]; ok {
			return // recorded with all its ancestors
		}
		if e, ok := p.entries[d]; ok && e.Header.Typeflag == tar.TypeDir {
			return // copied by this instruction: it exists
		}
		p.mkdirs[d] = mode
	}
}

func (p *planner) dirEntry(name string, mode int64, o Owner) layer.Entry {
	return layer.Entry{Header: &tar.Header{
		Typeflag: tar.TypeDir,
		Name:     name,
		Mode:     mode,
		Uid:      o.UID,
		Gid:      o.GID,
		ModTime:  p.now,
	}}
}

// copyDir copies the contents of the directory src into Dest.
func (p *planner) copyDir(ctx context.Context, src string) error {
	// fsutil creates the destination before copying into it: Dest itself
	// with a trailing slash, else its parent and then, for a directory
	// source, Dest. Both end in the same MkdirAll of Dest, which creates
	// it even when nothing is copied into it.
	p.mkdirAll(p.dest, p.createdDirMode())
	_, err := p.copyTree(ctx, src, "", p.dest)
	return err
}

// copyTree copies the entries of the source directory dir (rel is its path
// relative to the copied source, for --exclude) into dst. It reports whether
// anything was emitted, so that an excluded directory is created only when a
// negated pattern brings back something inside it, as fsutil does.
func (p *planner) copyTree(ctx context.Context, dir, rel, dst string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ents, err := readDirFS(p.fsys, dir)
	if err != nil {
		return false, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	emitted := false
	for _, de := range ents {
		src := path.Join(dir, de.Name())
		r := path.Join(rel, de.Name())
		target := path.Join(dst, de.Name())
		excluded := p.excluded(r)
		if excluded && !p.excl.Exclusions() {
			continue
		}
		fi, err := lstatFS(p.fsys, src)
		if err != nil {
			return false, fmt.Errorf("reading %s: %w", src, err)
		}
		if !fi.IsDir() {
			if excluded {
				continue
			}
			e, err := p.entryFor(src, target, fi)
			if err != nil {
				return false, err
			}
			p.put(e)
			emitted = true
			continue
		}
		e, err := p.entryFor(src, target, fi)
		if err != nil {
			return false, err
		}
		if !excluded {
			p.put(e)
			emitted = true
		}
		sub, err := p.copyTree(ctx, src, r, target)
		if err != nil {
			return false, err
		}
		if sub && excluded {
			p.put(e)
		}
		emitted = emitted || sub
	}
	return emitted, nil
}

// owner is the uid and gid a copied file gets.
func (p *planner) owner(fi fs.FileInfo) Owner {
	if p.req.Chown != nil {
		return *p.req.Chown
	}
	if p.req.From == nil {
		return Owner{}
	}
	if h, ok := fi.Sys().(*tar.Header); ok {
		return Owner{UID: h.Uid, GID: h.Gid}
	}
	return Owner{}
}

// modeBits converts a Go file mode to tar permission and special bits.
func modeBits(m fs.FileMode) int64 {
	b := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// chmodBits is the --chmod value as tar mode bits.
func chmodBits(m fs.FileMode) int64 {
	return int64(uint32(m)&0o7777) | modeBits(m)
}

// entryFor builds the entry named target for the source file src (resolved,
// its FileInfo fi), with copy metadata rules applied.
func (p *planner) entryFor(src, target string, fi fs.FileInfo) (layer.Entry, error) {
	o := p.owner(fi)
	mode := fi.Mode()
	h := &tar.Header{
		Name:    target,
		Mode:    modeBits(mode),
		Uid:     o.UID,
		Gid:     o.GID,
		ModTime: fi.ModTime(),
	}
	src0, _ := fi.Sys().(*tar.Header)
	if src0 != nil {
		h.PAXRecords = xattrRecords(src0.PAXRecords)
	}
	if p.req.ContextFiles != nil && p.req.From == nil && mode.IsRegular() {
		p.req.ContextFiles[target] = src
	}
	var open func() (io.ReadCloser, error)
	switch {
	case mode.IsRegular():
		if key := linkKey(fi, src); key != "" {
			if first, ok := p.links[key]; ok {
				if e, ok := p.entries[first]; ok && e.Header.Typeflag == tar.TypeReg {
					h.Typeflag, h.Linkname = tar.TypeLink, first
					break
				}
			}
			p.links[key] = target
		}
		h.Typeflag = tar.TypeReg
		h.Size = fi.Size()
		fsys, size := p.fsys, fi.Size()
		open = func() (io.ReadCloser, error) {
			f, err := fsys.Open(src)
			if err != nil {
				return nil, err
			}
			return &exactReader{r: io.LimitReader(f, size), c: f, left: size, name: src}, nil
		}
	case mode.IsDir():
		h.Typeflag = tar.TypeDir
	case mode&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		h.Mode = symlinkMode // whatever the source's header says
		t, err := readLinkFS(p.fsys, src)
		if err != nil {
			return layer.Entry{}, fmt.Errorf("reading symlink %s: %w", src, err)
		}
		h.Linkname = t
	case mode&fs.ModeDevice != 0 || mode&fs.ModeNamedPipe != 0:
		switch {
		case mode&fs.ModeNamedPipe != 0:
			h.Typeflag = tar.TypeFifo
		case mode&fs.ModeCharDevice != 0:
			h.Typeflag = tar.TypeChar
		default:
			h.Typeflag = tar.TypeBlock
		}
		if src0 != nil {
			h.Devmajor, h.Devminor = src0.Devmajor, src0.Devminor
		}
	default:
		return layer.Entry{}, fmt.Errorf("copying %s: unsupported file type %s", src, mode.Type())
	}
	if p.req.Chmod != nil && h.Typeflag != tar.TypeSymlink {
		h.Mode = chmodBits(*p.req.Chmod)
	}
	return layer.Entry{Header: h, Open: open}, nil
}

// linkKey identifies the file behind a hard link: device and inode on a
// local file system, the link target's path in an image file system whose
// Sys() is a *tar.Header (or the rootfs.PAXInode record of a DirView).
// "" when the file has a single name.
func linkKey(fi fs.FileInfo, src string) string {
	switch sys := fi.Sys().(type) {
	case *syscall.Stat_t:
		if sys.Nlink > 1 {
			return fmt.Sprintf("inode:%d:%d", sys.Dev, sys.Ino)
		}
	case *tar.Header:
		if ino, ok := sys.PAXRecords[rootfs.PAXInode]; ok {
			return "inode:" + ino
		}
		if sys.Typeflag == tar.TypeLink {
			return "tar:" + strings.TrimPrefix(path.Clean("/"+sys.Linkname), "/")
		}
		return "tar:" + src
	}
	return ""
}

func readLinkFS(fsys fs.FS, p string) (string, error) {
	if c, ok := fsys.(*Context); ok {
		return c.readlink(p)
	}
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		return rl.ReadLink(p)
	}
	return "", errors.ErrUnsupported
}

// exactReader yields exactly left bytes, or an error: a file that shrank
// after Plan would otherwise corrupt the layer.
type exactReader struct {
	r    io.Reader
	c    io.Closer
	left int64
	name string
}

func (e *exactReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("reading %s: file changed size during the build", e.name)
	}
	return n, err
}

func (e *exactReader) Close() error { return e.c.Close() }
