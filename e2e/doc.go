// Package e2e holds the end-to-end tests of the ship binary: differential
// tests that build the same Dockerfiles with ship and with BuildKit and
// compare image config, history, the entries of every layer, and the
// flattened file system as `docker export` shows it; tests that run the
// images ship builds; and the errors users meet, checked on the binary's
// exit codes and messages.
//
// The references are the Docker engine's BuildKit (Docker 20.10: its older
// Dockerfile frontend formats some history entries differently, which the
// comparison accepts and logs) and, when SHIP_BUILDKIT_ADDR (and
// SHIP_BUILDCTL) name a current buildkitd (.ci/buildkitd starts one), a
// BuildKit of the version whose Dockerfile parser ship uses, compared
// exactly and also for what Docker 20.10 rejects (heredocs, COPY --link,
// --exclude, ADD --checksum).
//
// The tests need the CNCF distribution registry and a Docker engine; see
// internal/testbed. Run them with `go test ./e2e/`; set SHIP_E2E_BINARY to
// test a prebuilt ship binary instead of building ./cmd/ship.
package e2e
