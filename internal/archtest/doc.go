// Package archtest holds the test that keeps the dependency direction of
// DESIGN.md: cmd → action → internal/{build,registry,scan,report/*} →
// internal/{dockerfile,layer,rootfs,copier,sandbox,findings}, and only
// internal/scan may import Trivy. It has no non-test code.
package archtest
