// Package rootfs gives read access to the flattened file system of an image
// without extracting it: View answers lookups by reading layers from the top
// down and stops at the first layer that has the answer. It also resolves user
// and group names from a file system's /etc/passwd and /etc/group.
//
// (Safe extraction of layers into a directory arrives with RUN support.)
package rootfs
