package findings

import (
	"encoding/json"
	"fmt"
)

// Document is the findings-json output: ship's own, stable format. The
// names "image", "digest", "findings" and, per finding, "id", "kind",
// "severity", "package", "installed_version", "fixed_version", "title",
// "layer", "origin", "location" {"path", "line"} and "status" are a promise to
// users; fields may be added, never renamed or removed.
//
//	{
//	  "image": "ghcr.io/o/app:1",
//	  "digest": "sha256:...",
//	  "summary": {"total": 1, "by_severity": {"HIGH": 1, ...}, ...},
//	  "findings": [
//	    {"id": "CVE-2099-0001", "kind": "vulnerability", "severity": "HIGH",
//	     "package": "openssl", "installed_version": "3.0.1-1", "fixed_version": "3.0.2-1",
//	     "title": "...", "layer": "sha256:...", "layer_index": 0, "origin": "base",
//	     "location": {"path": "Dockerfile", "line": 1}, "status": "new"}
//	  ]
//	}
//
// "status" is present only when the image was compared to another; "line" is
// 0 when unknown.
type Document struct {
	Image    string    `json:"image"`
	Digest   string    `json:"digest"`
	Summary  Summary   `json:"summary"`
	Findings []Finding `json:"findings"`
}

// NewDocument builds the document for image (a reference) and its digest,
// with the findings sorted (see Sort) and summarised. fs is not modified.
func NewDocument(image, digest string, fs []Finding) Document {
	sorted := append([]Finding{}, fs...)
	Sort(sorted)
	return Document{Image: image, Digest: digest, Summary: Summarize(sorted), Findings: sorted}
}

// Marshal encodes d as indented JSON with a trailing newline; "findings" is
// an empty list, never null.
func Marshal(d Document) ([]byte, error) {
	if d.Findings == nil {
		d.Findings = []Finding{}
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding findings document: %w", err)
	}
	return append(b, '\n'), nil
}
