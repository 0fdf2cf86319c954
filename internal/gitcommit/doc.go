// Package gitcommit reads the committer time of HEAD of a git checkout
// without the git binary, so that SOURCE_DATE_EPOCH can default to the commit
// time inside a container that has no git.
//
// It understands the parts of the repository layout needed for that one
// question: a .git directory or a .git file (worktrees, submodules) with its
// commondir, HEAD (symbolic or detached), loose refs and packed-refs, loose
// objects, pack files with version 2 indexes, both kinds of deltas, and
// objects/info/alternates (one level). SHA-256 repositories and the reftable
// ref storage are reported as not supported. Sizes are bounded and every
// object read is checked against its SHA-1 id.
package gitcommit
