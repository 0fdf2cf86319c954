// Package layer writes deterministic image layers: tar entries sorted by path,
// normalised ownership and times, OCI whiteouts, compressed with parallel gzip
// while the compressed and uncompressed digests are computed in one pass.
package layer
