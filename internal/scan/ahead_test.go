package scan

import (
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

// withHistory returns img with history h (one entry per layer, plus
// empty entries).
func withHistory(t *testing.T, img v1.Image, h []v1.History) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.History = h
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestAnalyseBase analyses a base image ahead of the scan of an image
// built on it: the scan then analyses only the build's layers, and finds
// exactly what a scan without the analysis ahead finds, including
// whether the secret in the base layer is reported (Trivy leaves secrets
// out of the layers it takes for the base's, and the analysis ahead must
// take the same ones). Where instructions could make Trivy take others,
// nothing is analysed ahead.
func TestAnalyseBase(t *testing.T) {
	t.Parallel()
	baseLayer := testbed.FilesLayer(t, map[string]string{
		"etc/debian_version":  baseFiles["etc/debian_version"],
		"etc/os-release":      baseFiles["etc/os-release"],
		"var/lib/dpkg/status": baseFiles["var/lib/dpkg/status"],
		"etc/app.conf":        settings, // a secret in the base image
	})
	copyLayer := testbed.FilesLayer(t, copyFiles)
	runLayer := testbed.FilesLayer(t, runFiles)
	layerEntry := func(by string) v1.History { return v1.History{CreatedBy: by} }
	cmdEntry := v1.History{CreatedBy: `CMD ["bash"]`, EmptyLayer: true}

	tests := []struct {
		name         string
		baseHistory  []v1.History
		instructions []string
		ahead        bool // analysed ahead
		baseSecret   bool // the base's secret is reported
	}{
		{"base ends with CMD", []v1.History{layerEntry("ADD rootfs /"), cmdEntry},
			[]string{"COPY", "RUN", "CMD"}, true, false},
		{"base without CMD", []v1.History{layerEntry("ADD rootfs /")},
			[]string{"COPY", "RUN", "CMD"}, true, true},
		{"CMD before the last layer, base without CMD", []v1.History{layerEntry("ADD rootfs /")},
			[]string{"COPY", "CMD", "RUN"}, false, false},
		{"CMD before the last layer, base ends with CMD", []v1.History{layerEntry("ADD rootfs /"), cmdEntry},
			[]string{"CMD", "COPY", "RUN"}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := withHistory(t, testbed.LinuxImage(t, baseLayer), tc.baseHistory)
			// The built image's history: the base's, then the instructions.
			h := slices.Clone(tc.baseHistory)
			for _, in := range tc.instructions {
				switch in {
				case "CMD":
					h = append(h, v1.History{CreatedBy: `CMD ["/app/run"]`, EmptyLayer: true})
				default:
					h = append(h, layerEntry(in+" ..."))
				}
			}
			built := withHistory(t, testbed.LinuxImage(t, baseLayer, copyLayer, runLayer), h)
			diffID := func(l v1.Layer) string { d, _ := l.DiffID(); return d.String() }

			ref, err := Scan(t.Context(), built, WithCacheDir(cacheWithDB(t, freshMeta())), WithDBRepositories(unreachable))
			if err != nil {
				t.Fatal(err)
			}
			cache := cacheWithDB(t, freshMeta())
			n, err := AnalyseBase(t.Context(), base, tc.instructions, WithCacheDir(cache), WithDBRepositories(unreachable))
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 2, false: 0}[tc.ahead]; n != want { // the base layer and the empty one
				t.Errorf("analysed ahead %d layers, want %d", n, want)
			}
			res, err := Scan(t.Context(), built, WithCacheDir(cache), WithDBRepositories(unreachable))
			if err != nil {
				t.Fatal(err)
			}
			wantAnalysed := []string{diffID(baseLayer), diffID(copyLayer), diffID(runLayer)}
			if tc.ahead {
				wantAnalysed = wantAnalysed[1:]
			}
			slices.Sort(wantAnalysed)
			if !slices.Equal(res.Stats.AnalysedLayers, wantAnalysed) {
				t.Errorf("the scan analysed %v, want %v", res.Stats.AnalysedLayers, wantAnalysed)
			}
			key := func(f findings.Finding) string { return string(f.Kind) + " " + f.ID + " " + f.DiffID + " " + f.Path }
			got, want := mapKeys(res.Findings, key), mapKeys(ref.Findings, key)
			if !slices.Equal(got, want) {
				t.Errorf("findings %v, without the analysis ahead %v", got, want)
			}
			secretInBase := slices.ContainsFunc(res.Findings, func(f findings.Finding) bool {
				return f.Kind == findings.KindSecret && f.DiffID == diffID(baseLayer)
			})
			if secretInBase != tc.baseSecret {
				t.Errorf("secret in the base layer reported: %v, want %v", secretInBase, tc.baseSecret)
			}
		})
	}
}

// mapKeys returns key of each finding, sorted.
func mapKeys(fs []findings.Finding, key func(findings.Finding) string) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, key(f))
	}
	slices.Sort(out)
	return out
}
