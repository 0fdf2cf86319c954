package scan

import (
	"context"
	"fmt"
	"io"

	"github.com/aquasecurity/trivy/pkg/report/cyclonedx"
	"github.com/aquasecurity/trivy/pkg/report/spdx"
	"github.com/aquasecurity/trivy/pkg/types"
)

// SBOMFormat names an SBOM format WriteSBOM writes.
type SBOMFormat string

// The SBOM formats.
const (
	// SBOMCycloneDX is CycloneDX JSON.
	SBOMCycloneDX SBOMFormat = "cyclonedx"
	// SBOMSPDX is SPDX JSON.
	SBOMSPDX SBOMFormat = "spdx"
)

// ParseSBOMFormat parses "cyclonedx" or "spdx" (also "spdx-json").
func ParseSBOMFormat(s string) (SBOMFormat, error) {
	switch s {
	case "cyclonedx":
		return SBOMCycloneDX, nil
	case "spdx", "spdx-json":
		return SBOMSPDX, nil
	}
	return "", fmt.Errorf("parsing SBOM format %q: want cyclonedx or spdx", s)
}

// WriteSBOM writes the packages the scan found as an SBOM, with Trivy's own
// SBOM writers. Packages are inventoried by the vulnerability scanner: a scan
// without ScannerVuln yields an SBOM without packages.
func (r *Result) WriteSBOM(ctx context.Context, w io.Writer, format SBOMFormat) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	switch format {
	case SBOMCycloneDX:
		err = cyclonedx.NewWriter(w, appVersion).Write(ctx, r.report)
	case SBOMSPDX:
		err = spdx.NewWriter(w, appVersion, types.FormatSPDXJSON).Write(ctx, r.report)
	default:
		return fmt.Errorf("writing SBOM: unknown format %q", format)
	}
	if err != nil {
		return fmt.Errorf("writing %s SBOM: %w", format, oneLineErr(err))
	}
	return nil
}

// appVersion is the tool version written into SBOMs and DB checks.
const appVersion = "ship"
