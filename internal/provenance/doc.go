// Package provenance writes SLSA Provenance v1 attestations: an in-toto
// Statement v1 (https://in-toto.io/Statement/v1) whose predicate
// (https://slsa.dev/provenance/v1) says what was built, from which source
// and base images, with which parameters, by which builder and when.
//
// The output is unsigned JSON, deterministic for a given Build (struct
// fields in a fixed order, map keys sorted, times in UTC), ready to be
// attached to the pushed image as an OCI referrer with media type
// MediaType.
//
// A Build has no field for secrets. Build arguments are recorded as given,
// as BuildKit's "min" provenance mode does, so callers must leave out the
// secret-looking ones first: PublicBuildArgs does that. User information in
// a source URI (e.g. a CI job token in a clone URL) is always removed.
package provenance
