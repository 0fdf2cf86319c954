package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestGitLabJob runs the ship binary as the GitLab component's job does:
// the GitLab CI variables of a merge request pipeline, the SHIP_* variables
// the component sets (empty ones included, booleans with their leading
// space), the working directory at CI_PROJECT_DIR, and the project's
// registry with CI_REGISTRY_USER / CI_REGISTRY_PASSWORD (htpasswd over
// TLS). The project is the bundled example with one requirement the
// fixture DB knows to be vulnerable. The image must be at both tags,
// ship.env must name it, and the reports must be valid.
func TestGitLabJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const (
		user     = "gitlab-ci-token"
		password = "glcbt-registry-password-4e1d"
		sha      = "4e1d0c3b2a19f8e7d6c5b4a39281706f5e4d3c2b"
	)
	reg := testbed.StartRegistry(t, testbed.WithHtpasswd(user, password), testbed.WithTLS())
	root := t.TempDir()
	project := filepath.Join(root, "builds", "group", "hello")
	copyDir(t, filepath.Join("..", "examples", "hello"), project)
	req, err := os.ReadFile(filepath.Join(project, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "requirements.txt"), append(req, "shipreq==1.5.0\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	vulnLine := strings.Count(string(req), "\n") + 1
	cache := filepath.Join(root, "cache")
	testbed.FixtureDB(t, cache)

	image := reg.Ref("group/hello")
	tags := []string{image + ":" + sha, image + ":feature-x"}
	env := []string{
		// What GitLab sets.
		"CI=true", "GITLAB_CI=true",
		"CI_SERVER_URL=https://gitlab.example.com", "CI_SERVER_FQDN=gitlab.example.com",
		"CI_API_V4_URL=https://gitlab.example.com/api/v4",
		"CI_PROJECT_ID=4242", "CI_PROJECT_PATH=group/hello", "CI_PROJECT_DIR=" + project,
		"CI_JOB_URL=https://gitlab.example.com/group/hello/-/jobs/99", "CI_JOB_TOKEN=job-token",
		"CI_COMMIT_SHA=" + sha, "CI_COMMIT_REF_SLUG=feature-x", "CI_DEFAULT_BRANCH=main",
		"CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=7", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME=main",
		"CI_REGISTRY=" + reg.Host, "CI_REGISTRY_IMAGE=" + image,
		"CI_REGISTRY_USER=" + user, "CI_REGISTRY_PASSWORD=" + password,
		// The registry's certificate is the only one trusted.
		"SSL_CERT_FILE=" + reg.CAFile,
		// What templates/ship.yml sets, its inputs expanded by GitLab.
		"SHIP_CONTEXT=" + project, "SHIP_FILE=", "SHIP_TARGET=", "SHIP_TAGS=" + strings.Join(tags, ","),
		"SHIP_PUSH= true", "SHIP_REGISTRY_USERNAME=", "SHIP_REGISTRY_PASSWORD=", "SHIP_OUTPUT=",
		"SHIP_SCAN= true", "SHIP_SCANNERS=vuln,secret", "SHIP_CACHE_DIR=" + cache, "SHIP_SKIP_DB_UPDATE= true",
		"SHIP_DB_REPOSITORY=127.0.0.1:1/none/trivy-db:2", "SHIP_FINDINGS_JSON=ship-findings.json",
		"SHIP_SBOM=cyclonedx", "SHIP_SBOM_FILE=", "SHIP_COMPARE_TO=", "SHIP_COMMENT=true",
		"SHIP_SARIF_FILE=ship.sarif", "SHIP_MAX_ANNOTATIONS= 200", "SHIP_FAIL_ON_REPORT_ERROR= false", "SHIP_GITLAB_TOKEN=",
	}
	res := runShip(t, ctx, project, env)
	if res.Code != 0 {
		t.Fatalf("the GitLab job failed: %s", res)
	}
	if strings.Contains(res.Stdout+res.Stderr, password) {
		t.Error("the registry password is in ship's output")
	}
	if !strings.Contains(res.Stderr, "no gitlab-token: no merge request note") {
		t.Errorf("no line saying how to have the merge request note:\n%s", res.Stderr)
	}

	dotenv := readText(t, filepath.Join(project, "ship.env"))
	digest := regexp.MustCompile(`(?m)^SHIP_DIGEST=(sha256:[0-9a-f]{64})$`).FindStringSubmatch(dotenv)
	if digest == nil {
		t.Fatalf("ship.env has no SHIP_DIGEST:\n%s", dotenv)
	}
	for _, line := range []string{"SHIP_IMAGE=" + image + "@" + digest[1], "SHIP_TAGS=" + strings.Join(tags, ",")} {
		if !slices.Contains(strings.Split(dotenv, "\n"), line) {
			t.Errorf("ship.env has no line %q:\n%s", line, dotenv)
		}
	}
	for _, tag := range tags {
		ref, err := name.ParseReference(tag)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithTransport(reg.Transport()),
			remote.WithAuth(&authn.Basic{Username: user, Password: password}))
		if err != nil {
			t.Errorf("%s is not in the registry: %v", tag, err)
			continue
		}
		if desc.Digest.String() != digest[1] {
			t.Errorf("%s has digest %s, ship.env says %s", tag, desc.Digest, digest[1])
		}
	}

	cs := []byte(readText(t, filepath.Join(project, "gl-container-scanning-report.json")))
	testbed.ValidateJSON(t, "gitlab-container-scanning-report-format.schema.json", cs)
	var rep struct {
		Scan struct {
			Scanner struct{ Version string }
		}
		Vulnerabilities []struct {
			Name     string
			Location struct{ Image string }
		}
	}
	if err := json.Unmarshal(cs, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Vulnerabilities) != 1 || rep.Vulnerabilities[0].Name != "CVE-2099-0003 in shipreq" || rep.Vulnerabilities[0].Location.Image != tags[0] {
		t.Errorf("vulnerabilities %+v, want CVE-2099-0003 in shipreq of %s", rep.Vulnerabilities, tags[0])
	}
	if want := "v" + rep.Scan.Scanner.Version; !strings.Contains(readText(t, filepath.Join("..", "go.mod")), "github.com/aquasecurity/trivy "+want+"\n") {
		t.Errorf("scanner version %q is not the Trivy module's in go.mod", rep.Scan.Scanner.Version)
	}

	cq := []byte(readText(t, filepath.Join(project, "gl-code-quality-report.json")))
	testbed.ValidateJSON(t, "gitlab-codequality-report.schema.json", cq)
	var issues []json.RawMessage
	if err := json.Unmarshal(cq, &issues); err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, is := range issues {
		testbed.ValidateJSON(t, "gitlab-codequality-issue.schema.json", is)
		var e struct {
			CheckName string `json:"check_name"`
			Location  struct {
				Path  string
				Lines struct{ Begin int }
			}
		}
		if err := json.Unmarshal(is, &e); err != nil {
			t.Fatal(err)
		}
		where = append(where, e.CheckName+"@"+e.Location.Path+":"+strconv.Itoa(e.Location.Lines.Begin))
	}
	if want := []string{"CVE-2099-0003@requirements.txt:" + strconv.Itoa(vulnLine)}; !slices.Equal(where, want) {
		t.Errorf("code quality entries %q, want %q", where, want)
	}

	sbom := readText(t, filepath.Join(project, "gl-sbom-report.cdx.json"))
	if !strings.Contains(sbom, `"bomFormat": "CycloneDX"`) || !strings.Contains(sbom, "shipreq") {
		t.Errorf("gl-sbom-report.cdx.json is not the CycloneDX SBOM:\n%.300s", sbom)
	}
	for _, f := range []string{"ship-findings.json", "ship.sarif", "ship-sbom.cdx.json"} {
		if _, err := os.Stat(filepath.Join(project, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
}
