// Package snapshot finds what a RUN changed in a root file system directory
// and returns it as layer entries, the way BuildKit's differ does.
//
// Take records the metadata of every path under a directory (a walk with
// lstat; no content is read). After the RUN, Diff walks the directory again
// and compares: the result is the list of layer.Entry values of the added and
// modified paths (content read lazily from the directory), OCI whiteouts for
// deleted paths, and the parent directories of every change with their
// current metadata, ready for layer.New.
//
// The comparison follows BuildKit's overlay differ (util/overlay Changes and
// sameDirent, on top of containerd's archive.ChangeWriter), which BuildKit
// v0.32 uses for RUN on its default overlayfs snapshotter; the cases below
// were checked against a buildkitd v0.32.2 build:
//
//   - A path whose inode, device, ctime, mtime, size, mode and owner are all
//     unchanged was not touched: it is unchanged. Every write, chmod, chown,
//     utimes, link or rename sets the ctime, which no program can set back;
//     this is what an overlay's copy-up tells BuildKit.
//   - A touched path of another type is replaced: the new entry is emitted;
//     a directory that became something else needs no whiteouts below it.
//   - A touched directory is modified only when its mode, owner or
//     security.capability changed. A directory whose only change is its mtime
//     (a file was created and removed in it) is not in the layer, as with
//     BuildKit; directories are included as parents of changes.
//   - A touched non-directory is modified when its mode, owner, device
//     number, security.capability, link target or size changed, when its mtime
//     changed (to the nanosecond), and, when
//     both mtimes are whole seconds (a file extracted from a tar, or a file
//     system with coarse timestamps), when its content may have changed: this
//     is the only case where metadata is ambiguous. BuildKit compares the
//     contents there; a snapshot has no old content, so Take hashes such files
//     when asked with WithContentHash, and Diff compares the hashes. Without
//     hashes an ambiguous file is reported as modified (a layer may then hold
//     an unchanged file, never miss a change).
//   - Deleted paths give one whiteout (".wh.NAME") for the topmost deleted
//     path only. A directory deleted and created again gives whiteouts for
//     the old children that are gone, never an opaque whiteout: BuildKit's
//     overlay differ walks an opaque directory with the walking differ and
//     writes the same.
//   - Paths of one inode (hard links) that are in the layer are written
//     once with their content, under the first path in layer order, and as
//     hard links to it elsewhere. Unchanged paths of that inode are not
//     added: BuildKit's overlay differ does not add them either (the link to
//     an unchanged file is then broken in the image, as with BuildKit).
//   - Only the security.capability extended attribute is put into the layer,
//     as containerd's ChangeWriter does; sockets are never put into a layer.
//
// Paths given to WithIgnore (the sandbox's /proc, /dev, /sys, bind-mounted
// files, secret and cache mount targets) are neither walked, nor emitted, nor
// whited out.
//
// With an overlay mount the upper directory is the diff: DiffUpper reads
// the same []layer.Entry from an upper directory and the lower file system,
// as BuildKit's overlay differ does (no snapshot is taken before the RUN).
package snapshot
