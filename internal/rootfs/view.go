package rootfs

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Cache limits of a View: bodies of regular files up to smallFileLimit bytes
// are kept in memory when a layer is indexed, up to cacheBudget bytes per
// View; bigger files are streamed from their layer again when opened.
const (
	smallFileLimit = 64 << 10
	cacheBudget    = 16 << 20
	maxSymlinks    = 255
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// View is the flattened file system of an image, read from its layers
// without extracting them. It implements fs.FS, fs.StatFS, fs.ReadFileFS,
// fs.ReadDirFS and fs.ReadLinkFS.
//
// Names follow io/fs: slash-separated, no leading "/", "." is the root.
// FileInfo.Sys returns a *tar.Header (a copy: Name is the clean path in the
// image, Mode holds permission, setuid, setgid and sticky bits, Uid, Gid,
// Linkname as in the layer). Open, Stat, ReadFile and ReadDir follow
// symlinks; absolute targets are relative to the view's root and ".." never
// goes above it. Lstat and ReadLink do not follow the last element. Hardlinks
// read as their target and report its size, mode and owner (Typeflag stays
// tar.TypeLink and Linkname names the target). OCI whiteouts and opaque
// directories are honoured.
//
// Lookups are lazy: resolving one path reads layers from the top down and
// stops at the first layer that decides it (the path is there, or hidden by a
// whiteout, an opaque directory or a non-directory parent); lower layers are
// not fetched. ReadDir indexes every layer once. Each layer is read at most
// once for its index; small file bodies are kept from that read, big ones
// are streamed from the layer again when opened.
//
// A View is safe for concurrent use. Errors from fetching layers are not
// cached: a later call tries again.
type View struct {
	img v1.Image

	perFile int64 // test hook: smallFileLimit
	budget  int64 // bytes of file bodies still allowed in memory

	mu        sync.Mutex
	layers    []*layerState // bottom first; nil until loaded
	merged    *tree
	rootEntry *node
}

type layerState struct {
	layer v1.Layer
	index *layerIndex
}

// layerIndex is what one layer says about the file system.
type layerIndex struct {
	entries   map[string]*node // clean path ("" is the root) → entry, incl. implicit parents
	whiteouts map[string]bool  // paths this layer deletes from the layers below
	opaque    map[string]bool  // directories whose lower content this layer hides
}

// node is one file system object of one layer.
type node struct {
	hdr      *tar.Header // Name is the clean path; Mode & 07777
	implicit bool        // a directory only implied by its children
	layer    int         // index in View.layers (bottom is 0)
	ordinal  int         // position of the header in the layer's tar stream
	body     []byte      // content of a small regular file, when cached
	cached   bool
}

func (n *node) isDir() bool     { return n.hdr.Typeflag == tar.TypeDir }
func (n *node) isSymlink() bool { return n.hdr.Typeflag == tar.TypeSymlink }

// NewView returns the flattened file system of img. Nothing is read until a
// method needs it.
func NewView(img v1.Image) *View {
	return &View{
		img:     img,
		perFile: smallFileLimit,
		budget:  cacheBudget,
		rootEntry: &node{implicit: true, layer: -1, hdr: &tar.Header{
			Typeflag: tar.TypeDir, Name: ".", Mode: 0o755, ModTime: time.Unix(0, 0),
		}},
	}
}

var (
	_ fs.FS         = (*View)(nil)
	_ fs.StatFS     = (*View)(nil)
	_ fs.ReadFileFS = (*View)(nil)
	_ fs.ReadDirFS  = (*View)(nil)
	_ fs.ReadLinkFS = (*View)(nil)
)

// loadLayers lists the image's layers (manifest only). Callers hold v.mu.
func (v *View) loadLayers() error {
	if v.layers != nil {
		return nil
	}
	ls, err := v.img.Layers()
	if err != nil {
		return fmt.Errorf("listing layers: %w", err)
	}
	v.layers = make([]*layerState, len(ls))
	for i, l := range ls {
		v.layers[i] = &layerState{layer: l}
	}
	return nil
}

// index returns the index of layer i, reading the layer the first time.
// Callers hold v.mu.
func (v *View) index(i int) (*layerIndex, error) {
	ls := v.layers[i]
	if ls.index != nil {
		return ls.index, nil
	}
	ix, err := v.readIndex(i)
	if err != nil {
		d, _ := ls.layer.Digest()
		return nil, fmt.Errorf("reading layer %d (%s): %w", i, d, err)
	}
	ls.index = ix
	return ix, nil
}

func (v *View) readIndex(i int) (*layerIndex, error) {
	rc, err := v.layers[i].layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ix := &layerIndex{
		entries:   map[string]*node{},
		whiteouts: map[string]bool{},
		opaque:    map[string]bool{},
	}
	tr := tar.NewReader(rc)
	for ord := 0; ; ord++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name, ok := cleanName(h.Name)
		if !ok {
			continue // "../x" or similar: never part of the view
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if base == opaqueMarker {
			ix.opaque[dir] = true
			ix.addImplicit(dir, i)
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			ix.whiteouts[path.Join(dir, base[len(whiteoutPrefix):])] = true
			ix.addImplicit(dir, i)
			continue
		}
		hc := *h
		hc.Name = name
		if name == "" {
			hc.Name = "."
		}
		hc.Mode &= 07777
		hc.Uname, hc.Gname = "", ""
		hc.PAXRecords = clonePAX(h.PAXRecords)
		hc.Xattrs = nil //nolint:staticcheck // deprecated field, mirrored in PAXRecords
		switch hc.Typeflag {
		case tar.TypeRegA:
			hc.Typeflag = tar.TypeReg
		case tar.TypeLink:
			target, ok := cleanName(hc.Linkname)
			if !ok || target == "" {
				continue
			}
			hc.Linkname = target
		}
		n := &node{hdr: &hc, layer: i, ordinal: ord}
		if hc.Typeflag == tar.TypeReg && hc.Size <= v.perFile && hc.Size <= v.budget {
			body := make([]byte, hc.Size)
			if _, err := io.ReadFull(tr, body); err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			n.body, n.cached = body, true
			v.budget -= hc.Size
		}
		if name != "" {
			ix.addImplicit(path.Dir(name), i)
		}
		ix.entries[name] = n
	}
	return ix, nil
}

func clonePAX(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// addImplicit records dir and its parents as directories of layer i unless
// the layer has entries for them.
func (ix *layerIndex) addImplicit(dir string, i int) {
	for dir != "" && dir != "." {
		if _, ok := ix.entries[dir]; ok {
			return
		}
		ix.entries[dir] = &node{implicit: true, layer: i, ordinal: -1, hdr: &tar.Header{
			Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: time.Unix(0, 0),
		}}
		dir = path.Dir(dir)
	}
}

// cleanName turns a tar entry name into a clean path relative to the root
// ("" for the root itself). ok is false for names that leave the root.
func cleanName(name string) (string, bool) {
	name = path.Clean("/" + name)
	if strings.Contains(name, "\x00") {
		return "", false
	}
	return strings.TrimPrefix(name, "/"), true
}

// state says what layer ix decides about p: its entry (possibly implicit),
// and whether p is hidden from the layers below.
func (ix *layerIndex) state(p string) (n *node, hidden bool) {
	n = ix.entries[p]
	if p == "" {
		return n, false
	}
	if ix.whiteouts[p] {
		hidden = true
	}
	// Strict ancestors: "" (root), then "a", "a/b", ...
	if ix.opaque[""] {
		hidden = true
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		a := p[:i]
		if ix.opaque[a] || ix.whiteouts[a] {
			hidden = true
		}
		if e := ix.entries[a]; e != nil && !e.isDir() {
			return nil, true
		}
	}
	return n, hidden
}

// lookup finds the entry visible at clean path p in layers top..0 without
// following symlinks. With meta false an implicit directory is enough (the
// caller only needs to know it is a directory); with meta true the lookup
// goes on down for the directory's own header. It returns nil when p does
// not exist. Callers hold v.mu.
func (v *View) lookup(p string, top int, meta bool) (*node, error) {
	if v.merged != nil && top == len(v.layers)-1 {
		return v.merged.nodes[p], nil
	}
	var implicit *node
	for i := top; i >= 0; i-- {
		if ls := v.layers[i]; ls.index == nil && lacks(TopLevelNames(ls.layer), p) {
			continue // not read: the layer holds nothing at p
		}
		ix, err := v.index(i)
		if err != nil {
			return nil, err
		}
		n, hidden := ix.state(p)
		if n != nil && !n.implicit {
			if implicit != nil && !n.isDir() {
				return implicit, nil
			}
			return n, nil
		}
		if n != nil && implicit == nil {
			implicit = n
			if !meta {
				return n, nil
			}
		}
		if hidden {
			break
		}
	}
	if implicit == nil && p == "" {
		return v.rootEntry, nil
	}
	return implicit, nil
}

// resolve walks name from the root, following symlinks in every element and,
// when follow, in the last one. It returns the clean path reached and its
// entry. Callers hold v.mu.
func (v *View) resolve(op, name string, follow bool) (string, *node, error) {
	if !fs.ValidPath(name) {
		return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if err := v.loadLayers(); err != nil {
		return "", nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	top := len(v.layers) - 1
	var todo []string
	if name != "." {
		todo = strings.Split(name, "/")
	}
	var cur []string
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		p := strings.Join(append(cur, c), "/")
		n, err := v.lookup(p, top, false)
		if err != nil {
			return "", nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if n == nil {
			return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if n.isSymlink() && (len(todo) > 0 || follow) {
			links++
			if links > maxSymlinks {
				return "", nil, &fs.PathError{Op: op, Path: name, Err: syscall.ELOOP}
			}
			target := n.hdr.Linkname
			if strings.HasPrefix(target, "/") {
				cur = cur[:0]
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if len(todo) > 0 && !n.isDir() {
			return "", nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		cur = append(cur, c)
	}
	p := strings.Join(cur, "/")
	n, err := v.lookup(p, top, true)
	if err != nil {
		return "", nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if n == nil { // cannot happen: every element was found
		return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return p, n, nil
}

// content returns the entry holding the data of n: n itself, or the target
// of a hardlink. Callers hold v.mu.
func (v *View) content(n *node) (*node, error) {
	for range maxSymlinks {
		if n.hdr.Typeflag != tar.TypeLink {
			return n, nil
		}
		t, err := v.lookup(n.hdr.Linkname, n.layer, true)
		if err != nil {
			return nil, err
		}
		if t == nil || t == n {
			return nil, fmt.Errorf("hardlink %s: target %s: %w", n.hdr.Name, n.hdr.Linkname, fs.ErrNotExist)
		}
		n = t
	}
	return nil, fmt.Errorf("hardlink %s: %w", n.hdr.Name, syscall.ELOOP)
}

// info returns the FileInfo of entry n reached as name. A hardlink reports
// its target's header (or its own when the target is missing). Callers hold
// v.mu.
func (v *View) info(name string, n *node) fs.FileInfo {
	h := *n.hdr
	if n.hdr.Typeflag == tar.TypeLink {
		if t, err := v.content(n); err == nil {
			h = *t.hdr
			h.Typeflag = tar.TypeLink
			h.Name = n.hdr.Name
			h.Linkname = n.hdr.Linkname
		}
	}
	h.PAXRecords = clonePAX(h.PAXRecords)
	return &fileInfo{name: path.Base(name), hdr: &h}
}

// Stat returns the FileInfo of name, following symlinks.
func (v *View) Stat(name string) (fs.FileInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, n, err := v.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return v.info(name, n), nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (v *View) Lstat(name string) (fs.FileInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, n, err := v.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return v.info(name, n), nil
}

// ReadLink returns the target of the symlink name, as written in the layer.
func (v *View) ReadLink(name string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, n, err := v.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !n.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.hdr.Linkname, nil
}

// ReadFile returns the content of name, following symlinks and hardlinks.
func (v *View) ReadFile(name string) ([]byte, error) {
	f, err := v.open("read", name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	if sf, ok := f.(*seekFile); ok {
		return append([]byte{}, sf.body...), nil
	}
	b := make([]byte, 0, max(fi.Size(), 0))
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
	}
}

// Open opens name for reading, following symlinks. Directories implement
// fs.ReadDirFile; small regular files also io.Seeker and io.ReaderAt.
func (v *View) Open(name string) (fs.File, error) {
	return v.open("open", name)
}

func (v *View) open(op, name string) (fs.File, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, n, err := v.resolve(op, name, true)
	if err != nil {
		return nil, err
	}
	fi := v.info(name, n)
	base := fileBase{name: name, info: fi}
	if n.isDir() {
		return &dirFile{fileBase: base, view: v, path: p}, nil
	}
	c, err := v.content(n)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	switch {
	case c.hdr.Typeflag != tar.TypeReg || c.hdr.Size == 0:
		return &seekFile{file: &file{fileBase: base, r: bytes.NewReader(nil)}, body: nil, br: bytes.NewReader(nil)}, nil
	case c.cached:
		br := bytes.NewReader(c.body)
		return &seekFile{file: &file{fileBase: base, r: br}, body: c.body, br: br}, nil
	default:
		rc, err := v.stream(c)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		return &file{fileBase: base, r: io.LimitReader(rc, c.hdr.Size), closer: rc}, nil
	}
}

// stream reads the layer of n again up to n's header and returns a reader
// positioned at its content.
func (v *View) stream(n *node) (io.ReadCloser, error) {
	l := v.layers[n.layer].layer
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("reading layer %d: %w", n.layer, err)
	}
	tr := tar.NewReader(rc)
	for ord := 0; ; ord++ {
		if _, err := tr.Next(); err != nil {
			rc.Close()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading layer %d: looking for %s: %w", n.layer, n.hdr.Name, err)
		}
		if ord == n.ordinal {
			return struct {
				io.Reader
				io.Closer
			}{tr, rc}, nil
		}
	}
}

// ReadDir returns the entries of the directory name, sorted by name,
// following symlinks to reach it. The first call indexes every layer.
func (v *View) ReadDir(name string) ([]fs.DirEntry, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, n, err := v.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	ents, err := v.readDir(p)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return ents, nil
}

// readDir lists the directory at clean path p. Callers hold v.mu.
func (v *View) readDir(p string) ([]fs.DirEntry, error) {
	if err := v.buildTree(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(v.merged.children[p]))
	for c := range v.merged.children[p] {
		names = append(names, c)
	}
	sort.Strings(names)
	out := make([]fs.DirEntry, 0, len(names))
	for _, c := range names {
		cp := path.Join(p, c)
		out = append(out, fs.FileInfoToDirEntry(v.info(cp, v.merged.nodes[cp])))
	}
	return out, nil
}

// tree is the merged file system of all layers.
type tree struct {
	nodes    map[string]*node
	children map[string]map[string]struct{}
}

func (t *tree) remove(p string) {
	for c := range t.children[p] {
		t.remove(path.Join(p, c))
	}
	delete(t.children, p)
	delete(t.nodes, p)
	if p != "" {
		if sib := t.children[parentOf(p)]; sib != nil {
			delete(sib, path.Base(p))
		}
	}
}

func (t *tree) clear(p string) {
	for c := range t.children[p] {
		t.remove(path.Join(p, c))
	}
}

func (t *tree) put(p string, n *node) {
	t.nodes[p] = n
	if p == "" {
		return
	}
	parent := parentOf(p)
	if t.children[parent] == nil {
		t.children[parent] = map[string]struct{}{}
	}
	t.children[parent][path.Base(p)] = struct{}{}
}

func parentOf(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// buildTree applies every layer from the bottom up, as an extraction would.
// Callers hold v.mu.
func (v *View) buildTree() error {
	if v.merged != nil {
		return nil
	}
	t := &tree{nodes: map[string]*node{"": v.rootEntry}, children: map[string]map[string]struct{}{}}
	for i := range v.layers {
		ix, err := v.index(i)
		if err != nil {
			return err
		}
		// Whiteouts and opaque markers apply to the layers below only.
		for d := range ix.opaque {
			t.clear(d)
		}
		for w := range ix.whiteouts {
			t.remove(w)
		}
		paths := make([]string, 0, len(ix.entries))
		for p := range ix.entries {
			paths = append(paths, p)
		}
		sort.Slice(paths, func(a, b int) bool { return lessPath(paths[a], paths[b]) })
		for _, p := range paths {
			n := ix.entries[p]
			old := t.nodes[p]
			switch {
			case p == "":
				if !n.implicit {
					t.nodes[""] = n
				}
			case old == nil:
				t.put(p, n)
			case old.isDir() && n.isDir():
				if !n.implicit {
					t.nodes[p] = n // keeps the children
				}
			default:
				t.remove(p)
				t.put(p, n)
			}
		}
	}
	v.merged = t
	return nil
}

// lessPath orders clean paths parents first.
func lessPath(a, b string) bool {
	ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
	if a == "" || b == "" {
		return a == "" && b != ""
	}
	if ca != cb {
		return ca < cb
	}
	return a < b
}

// fileInfo is the fs.FileInfo of a View entry.
type fileInfo struct {
	name string
	hdr  *tar.Header
}

func (fi *fileInfo) Name() string { return fi.name }
func (fi *fileInfo) Size() int64 {
	switch fi.hdr.Typeflag {
	case tar.TypeReg, tar.TypeLink:
		return fi.hdr.Size
	}
	return 0
}
func (fi *fileInfo) Mode() fs.FileMode  { return fi.hdr.FileInfo().Mode() }
func (fi *fileInfo) ModTime() time.Time { return fi.hdr.ModTime }
func (fi *fileInfo) IsDir() bool        { return fi.hdr.Typeflag == tar.TypeDir }
func (fi *fileInfo) Sys() any           { return fi.hdr }

// fileBase is what every open View entry has.
type fileBase struct {
	name   string
	info   fs.FileInfo
	closed bool
}

func (f *fileBase) Stat() (fs.FileInfo, error) { return f.info, nil }

// file is an open regular file (or device, fifo: empty) of a View.
type file struct {
	fileBase
	r      io.Reader
	closer io.Closer
}

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	return f.r.Read(p)
}

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// seekFile is an open file whose content is in memory.
type seekFile struct {
	*file
	body []byte
	br   *bytes.Reader
}

func (f *seekFile) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrClosed}
	}
	return f.br.Seek(offset, whence)
}

func (f *seekFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	return f.br.ReadAt(p, off)
}

// dirFile is an open directory of a View.
type dirFile struct {
	fileBase
	view   *View
	path   string
	dir    []fs.DirEntry // read on the first ReadDir
	dirPos int
	dirRd  bool
}

func (f *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
}

func (f *dirFile) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// ReadDir implements fs.ReadDirFile.
func (f *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	if f.closed {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: fs.ErrClosed}
	}
	if !f.dirRd {
		f.view.mu.Lock()
		ents, err := f.view.readDir(f.path)
		f.view.mu.Unlock()
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: err}
		}
		f.dir, f.dirRd = ents, true
	}
	rest := f.dir[f.dirPos:]
	if count <= 0 {
		f.dirPos = len(f.dir)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	count = min(count, len(rest))
	f.dirPos += count
	return rest[:count], nil
}
