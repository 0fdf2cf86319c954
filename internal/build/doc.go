// Package build turns a parsed Dockerfile and a build context into a v1.Image
// with BuildKit's semantics: one file per instruction family. Base images come
// from an ImageSource (the registry package implements it); their layers are
// never downloaded unless an instruction needs their content.
//
// RUN materialises the stage's root file system in a private directory
// under the build's temporary directory the first time a RUN needs it
// (every later layer of the stage is applied to it too), runs the command
// there through internal/sandbox, and turns what it changed
// (internal/snapshot) into a layer. The directories are removed when the
// stage ends and when Build returns.
package build
