// Package testbed starts the real services tests use (the CNCF distribution
// registry, with htpasswd and TLS when asked; a Docker engine client) and makes
// base images locally (a busybox image from Debian's busybox-static), so no
// test pulls anything from the internet. Only tests import it.
//
// A test that needs a missing service fails when CI=true and skips otherwise.
package testbed
