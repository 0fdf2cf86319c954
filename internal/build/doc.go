// Package build turns a parsed Dockerfile and a build context into a v1.Image
// with BuildKit's semantics: one file per instruction family. Base images come
// from an ImageSource (the registry package implements it); their layers are
// never downloaded unless an instruction needs their content.
package build
