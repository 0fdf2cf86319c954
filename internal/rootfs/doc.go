// Package rootfs gives read access to the flattened file system of an image
// without extracting it: View answers lookups by reading layers from the top
// down and stops at the first layer that has the answer. It also resolves user
// and group names from a file system's /etc/passwd and /etc/group.
//
// Extract and Apply materialise layers into a directory, as containerd
// applies them (whiteouts, opaque directories, hardlinks, owners, modes,
// xattrs, devices), confined to that directory whatever the layers contain.
package rootfs
