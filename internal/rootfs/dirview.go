package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PAXInode is the key of a PAX record that DirView puts into the
// *tar.Header of a regular file with more than one name: "DEV:INODE", the
// same for every name of the file, so that a reader can keep hard links
// together. It is not a real PAX key and must not be written to a layer.
const PAXInode = "SHIP.inode"

// DirView is a root file system directory (an extracted image) seen with
// the semantics of View: it implements fs.FS, fs.StatFS, fs.ReadFileFS,
// fs.ReadDirFS and fs.ReadLinkFS; Open, Stat, ReadFile and ReadDir follow
// symlinks inside the directory (absolute targets are relative to it and
// ".." never goes above it); Lstat and ReadLink do not follow the last
// element; FileInfo.Sys returns a *tar.Header (Name the clean path, Mode
// with setuid, setgid and sticky bits, Uid, Gid, Linkname of a symlink,
// device numbers, extended attributes as SCHILY.xattr. PAX records, and
// PAXInode for files with several names). Every access goes through an
// os.Root: nothing outside the directory is read. The directory must not
// change while the DirView is used.
type DirView struct {
	dir  string
	root *os.Root
}

// NewDirView opens dir as a DirView. Close releases it.
func NewDirView(dir string) (*DirView, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening root file system: %w", err)
	}
	return &DirView{dir: dir, root: root}, nil
}

// Close releases the directory.
func (d *DirView) Close() error { return d.root.Close() }

// resolve returns the path of name inside the directory with every
// symlink resolved (the last element only when follow is set), in io/fs
// form ("." for the root): absolute targets and ".." stay inside it.
func (d *DirView) resolve(op, name string, follow bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p, err := ResolvePath(d.root.Lstat, d.root.Readlink, name, follow, true)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: unwrapPathError(err)}
	}
	return p, nil
}

// unwrapPathError returns the cause of an *os.PathError (whose path is
// the resolved one, not the name the caller asked for).
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// info returns the FileInfo of p, a resolved path, as it is on disk (a
// symlink is not followed).
func (d *DirView) info(op, name, p string) (*dirInfo, error) {
	fi, err := d.root.Lstat(p)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: unwrapPathError(err)}
	}
	return d.newInfo(p, fi)
}

func (d *DirView) newInfo(p string, fi fs.FileInfo) (*dirInfo, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%s: no stat information", p)
	}
	h := &tar.Header{
		Name:    p,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		h.Size = st.Size
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		h.Typeflag = tar.TypeSymlink
		t, err := d.root.Readlink(p)
		if err != nil {
			return nil, err
		}
		h.Linkname = t
	case unix.S_IFCHR:
		h.Typeflag = tar.TypeChar
	case unix.S_IFBLK:
		h.Typeflag = tar.TypeBlock
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		h.Typeflag = tar.TypeReg // a socket: reported, never copied as such
	}
	if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
		h.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		h.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	}
	recs, err := xattrsOf(filepath.Join(d.dir, filepath.FromSlash(p)))
	if err != nil {
		return nil, err
	}
	if h.Typeflag == tar.TypeReg && st.Nlink > 1 {
		if recs == nil {
			recs = map[string]string{}
		}
		recs[PAXInode] = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	h.PAXRecords = recs
	return &dirInfo{name: path.Base(p), fi: fi, hdr: h}, nil
}

// xattrsOf returns the extended attributes of the file at full (not
// followed) as SCHILY.xattr. PAX records, nil when it has none or the file
// system does not support them.
func xattrsOf(full string) (map[string]string, error) {
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(full, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(full, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(full, buf)
		}
	}
	if errors.Is(err, unix.ENOTSUP) || n == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing extended attributes of %s: %w", full, err)
	}
	recs := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		size, err := unix.Lgetxattr(full, name, nil)
		if err != nil {
			continue // removed meanwhile, or not readable: not part of the view
		}
		v := make([]byte, size)
		size, err = unix.Lgetxattr(full, name, v)
		if err != nil {
			continue
		}
		recs["SCHILY.xattr."+name] = string(v[:size])
	}
	return recs, nil
}

// Stat implements fs.StatFS.
func (d *DirView) Stat(name string) (fs.FileInfo, error) {
	p, err := d.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := d.info("stat", name, p)
	if err != nil {
		return nil, err
	}
	if name != "." {
		fi.name = path.Base(name)
	}
	return fi, nil
}

// Lstat implements fs.ReadLinkFS.
func (d *DirView) Lstat(name string) (fs.FileInfo, error) {
	p, err := d.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return d.info("lstat", name, p)
}

// ReadLink implements fs.ReadLinkFS.
func (d *DirView) ReadLink(name string) (string, error) {
	p, err := d.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	t, err := d.root.Readlink(p)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: unwrapPathError(err)}
	}
	return t, nil
}

// ReadFile implements fs.ReadFileFS.
func (d *DirView) ReadFile(name string) ([]byte, error) {
	p, err := d.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	b, err := d.root.ReadFile(p)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapPathError(err)}
	}
	return b, nil
}

// ReadDir implements fs.ReadDirFS: the entries sorted by name, each with
// the FileInfo of DirView (not followed).
func (d *DirView) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := d.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	return d.readDir(name, p)
}

func (d *DirView) readDir(name, p string) ([]fs.DirEntry, error) {
	f, err := d.root.Open(p)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: unwrapPathError(err)}
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: unwrapPathError(err)}
	}
	slices.Sort(names)
	out := make([]fs.DirEntry, 0, len(names))
	for _, n := range names {
		fi, err := d.info("readdir", name, path.Join(p, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	return out, nil
}

// Open implements fs.FS. A directory's ReadDir returns what DirView's
// ReadDir does.
func (d *DirView) Open(name string) (fs.File, error) {
	p, err := d.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := d.info("open", name, p)
	if err != nil {
		return nil, err
	}
	if name != "." {
		fi.name = path.Base(name)
	}
	if fi.IsDir() {
		entries, err := d.readDir(name, p)
		if err != nil {
			return nil, err
		}
		return &dirViewDir{info: fi, entries: entries}, nil
	}
	f, err := d.root.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapPathError(err)}
	}
	return &dirViewFile{File: f, info: fi}, nil
}

// dirInfo is a FileInfo of DirView.
type dirInfo struct {
	name string
	fi   fs.FileInfo
	hdr  *tar.Header
}

func (i *dirInfo) Name() string       { return i.name }
func (i *dirInfo) Size() int64        { return i.fi.Size() }
func (i *dirInfo) Mode() fs.FileMode  { return i.fi.Mode() }
func (i *dirInfo) ModTime() time.Time { return i.fi.ModTime() }
func (i *dirInfo) IsDir() bool        { return i.fi.IsDir() }
func (i *dirInfo) Sys() any           { h := *i.hdr; return &h }

// dirViewFile is an open non-directory of a DirView.
type dirViewFile struct {
	*os.File
	info *dirInfo
}

func (f *dirViewFile) Stat() (fs.FileInfo, error) { return f.info, nil }

// dirViewDir is an open directory of a DirView.
type dirViewDir struct {
	info    *dirInfo
	entries []fs.DirEntry
	off     int
}

func (f *dirViewDir) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *dirViewDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: f.info.name, Err: syscall.EISDIR}
}
func (f *dirViewDir) Close() error { return nil }

func (f *dirViewDir) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := f.entries[f.off:]
	if count <= 0 {
		f.off = len(f.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n := min(count, len(rest))
	f.off += n
	return rest[:n], nil
}
