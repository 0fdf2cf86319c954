// Command ship builds a Dockerfile into an image without a Docker daemon,
// writes it as an OCI image layout (and a docker load tarball when asked),
// and pushes it. It is the entry point of the GitHub Action, the GitLab
// component and local use; package action holds the contract (inputs,
// outputs, exit codes) and ship --help lists every flag.
package main
