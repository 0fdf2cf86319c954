// Package registry talks to OCI registries with go-containerregistry: it picks
// credentials (explicit inputs, the GitHub token for ghcr.io, GitLab's
// CI_REGISTRY_* variables, the docker config and its credential helpers),
// sends docker.io references to a mirror first, allows plain HTTP only for the
// registries named insecure, resolves base images without downloading their
// layers, and pushes one image under several tags with retries, skipping blobs
// the registry has and cross-mounting blobs from other repositories.
package registry
