package scan

import (
	"context"
	"fmt"
	"testing/fstest"

	"github.com/aquasecurity/trivy/pkg/iac/detection"
	"github.com/aquasecurity/trivy/pkg/iac/rego"
	"github.com/aquasecurity/trivy/pkg/misconf"

	"github.com/intesys/ship-action/internal/findings"
)

// ScanDockerfile checks a Dockerfile with Trivy's misconfiguration checks
// for Dockerfiles, embedded in Trivy (no checks bundle is downloaded, so it
// works offline). content is the Dockerfile, path its location in the
// repository, used for the findings' Location (the line of the instruction a
// check points at). Only failed checks are returned, as misconfig findings
// with Origin build. Of the options only WithLogger applies.
func ScanDockerfile(ctx context.Context, path string, content []byte, opts ...Option) ([]findings.Finding, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	trivyMu.Lock()
	defer trivyMu.Unlock()
	restore := routeTrivyLogs(o.logger)
	defer restore()

	so := misconf.ScannerOption{Namespaces: rego.BuiltinNamespaces(), RegoErrorLimit: -1}
	rs, err := misconf.InitRegoScanner(so)
	if err != nil {
		return nil, fmt.Errorf("loading Dockerfile checks: %w", oneLineErr(err))
	}
	so.RegoScanner = rs
	s, err := misconf.NewScanner(detection.FileTypeDockerfile, so)
	if err != nil {
		return nil, fmt.Errorf("preparing Dockerfile checks: %w", oneLineErr(err))
	}
	// The checks recognise Dockerfiles by name: scan the content as
	// "Dockerfile" whatever the file is called.
	misconfs, err := s.Scan(ctx, fstest.MapFS{"Dockerfile": {Data: content, Mode: 0o644}})
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, oneLineErr(err))
	}
	var out []findings.Finding
	for _, m := range misconfs {
		for _, r := range m.Failures {
			f := findings.Finding{
				ID:          cmpOr(r.ID, r.AVDID),
				Kind:        findings.KindMisconfig,
				Severity:    severity(r.Severity),
				Title:       r.Title,
				Description: r.Message,
				Origin:      findings.OriginBuild,
				LayerIndex:  -1,
				Location:    findings.Location{Path: path, Line: r.StartLine},
				Target:      path,
			}
			if len(r.References) > 0 {
				f.PrimaryURL = r.References[0]
			}
			out = append(out, f)
		}
	}
	findings.Sort(out)
	return out, nil
}
