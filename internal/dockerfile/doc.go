// Package dockerfile parses a Dockerfile with BuildKit's parser and
// instructions packages into typed stages whose instructions keep their
// source location, expands ARG and ENV references with BuildKit's shell
// lexer, and works out which stages a target needs.
package dockerfile
