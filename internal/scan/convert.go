package scan

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/types"

	"github.com/intesys/ship-action/internal/findings"
)

// convert turns Trivy's report into attributed, sorted findings:
// vulnerabilities (OS and language packages) and secrets, each with the layer
// Trivy says introduced it.
func convert(report types.Report, cfg *v1.ConfigFile, manifest *v1.Manifest, attr findings.Attribution) []findings.Finding {
	layerIndex := make(map[string]int, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		layerIndex[d.String()] = i
	}
	digestOf := func(diffID string) (string, int) {
		i, ok := layerIndex[diffID]
		if !ok {
			return "", -1
		}
		if manifest != nil && i < len(manifest.Layers) {
			return manifest.Layers[i].Digest.String(), i
		}
		return "", i
	}

	var out []findings.Finding
	add := func(f findings.Finding, line int) {
		f.Layer, f.LayerIndex = digestOf(f.DiffID)
		attr.Apply(&f, line)
		out = append(out, f)
	}

	for _, r := range report.Results {
		lines := packageLines(r.Packages)
		for _, v := range r.Vulnerabilities {
			f := findings.Finding{
				ID:               v.VulnerabilityID,
				Kind:             findings.KindVulnerability,
				Severity:         severity(v.Severity),
				Package:          v.PkgName,
				InstalledVersion: v.InstalledVersion,
				FixedVersion:     v.FixedVersion,
				Title:            v.Title,
				Description:      v.Description,
				PrimaryURL:       v.PrimaryURL,
				DiffID:           v.Layer.DiffID,
				Target:           r.Target,
			}
			if r.Class == types.ClassLangPkg {
				// PkgPath is the package's own file (egg, wheel METADATA,
				// package.json); lock files are the target itself.
				f.Path = strings.TrimPrefix(cmpOr(v.PkgPath, r.Target), "/")
			}
			add(f, lines[pkgKey(v.PkgID, v.PkgName, v.InstalledVersion)])
		}
		for _, s := range r.Secrets {
			add(findings.Finding{
				ID:       s.RuleID,
				Kind:     findings.KindSecret,
				Severity: severity(s.Severity),
				Title:    s.Title,
				DiffID:   s.Layer.DiffID,
				Path:     strings.TrimPrefix(r.Target, "/"),
				Target:   r.Target,
			}, s.StartLine)
		}
	}
	findings.Sort(out)
	return out
}

// packageLines maps packages to the first line of their entry in the file
// they were read from, when the parser recorded it.
func packageLines(pkgs []ftypes.Package) map[string]int {
	m := make(map[string]int)
	for _, p := range pkgs {
		if len(p.Locations) > 0 && p.Locations[0].StartLine > 0 {
			m[pkgKey(p.ID, p.Name, p.Version)] = p.Locations[0].StartLine
		}
	}
	return m
}

func pkgKey(id, name, version string) string {
	if id != "" {
		return id
	}
	return name + "@" + version
}

// severity parses Trivy's severity name; anything else is UNKNOWN.
func severity(s string) findings.Severity {
	sev, err := findings.ParseSeverity(s)
	if err != nil {
		return findings.SeverityUnknown
	}
	return sev
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
