package scan

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	trivydb "github.com/aquasecurity/trivy/pkg/db"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
)

// dbState says what prepareDB did.
type dbState struct {
	downloaded bool
	repository string        // where it was downloaded from
	stale      bool          // a download failed and an older DB is used
	age        time.Duration // since the DB was built (metadata UpdatedAt), when stale
	tried      string        // the failed repositories, when stale
}

// DBOutcome is what PrepareDB came to. Given to Scan with WithDBOutcome, it
// stands for Scan's own preparation of the DB: a run whose build prepared
// the DB does not try the repositories again after they failed.
type DBOutcome struct {
	state dbState
	err   error
}

// Repository returns where the DB was downloaded from ("" when no
// download was needed or none succeeded).
func (d *DBOutcome) Repository() string { return d.state.repository }

// Err returns the error Scan would return for want of a DB.
func (d *DBOutcome) Err() error { return d.err }

// PrepareDB makes sure the cache dir holds a vulnerability DB the scan can
// use, as Scan would at its start (see prepareDB): a build calls it while it
// runs, so that the scan after it finds the DB fresh instead of downloading
// it then. There is nothing to do when the scan needs no local DB (no vuln
// scanner, or a Trivy server). The outcome's error is the one Scan would
// return; Scans with the same options may take the outcome
// (WithDBOutcome) instead of preparing the DB again.
func PrepareDB(ctx context.Context, opts ...Option) *DBOutcome {
	o, err := newOptions(opts)
	if err != nil {
		return &DBOutcome{err: err}
	}
	if o.serverURL != "" || !o.has(ScannerVuln) {
		return &DBOutcome{}
	}
	trivyMu.Lock()
	defer trivyMu.Unlock()
	restore := routeTrivyLogs(o.logger)
	defer restore()
	st, err := prepareDB(ctx, o)
	return &DBOutcome{state: st, err: err}
}

// prepareDB makes sure DIR/db holds a usable vulnerability DB: it downloads
// one when there is none or when the one there is past its NextUpdate (and
// was not downloaded in the last hour, as Trivy decides), trying each
// repository in order and moving on after any failure (TOOMANYREQUESTS, a
// network error, a missing repository). When every repository fails and an
// older DB is there, it is used with a warning that gives its age; without
// one, the error names the repositories tried and how to get past it.
func prepareDB(ctx context.Context, o *options) (dbState, error) {
	dbDir := trivydb.Dir(o.cacheDir)
	refs := make([]name.Reference, 0, len(o.dbRepositories))
	for _, r := range o.dbRepositories {
		var nameOpts []name.Option
		if o.insecure {
			nameOpts = append(nameOpts, name.Insecure)
		}
		ref, err := name.ParseReference(r, nameOpts...)
		if err != nil {
			return dbState{}, fmt.Errorf("parsing DB repository %q: %w", r, err)
		}
		refs = append(refs, ref)
	}

	client := trivydb.NewClient(dbDir, true, trivydb.WithDBRepository(refs))
	needs, err := client.NeedsUpdate(ctx, appVersion, o.skipDBUpdate)
	if err != nil {
		if o.skipDBUpdate {
			return dbState{}, fmt.Errorf("checking vulnerability DB in %s: %w (skip-db-update needs a DB in the cache dir)", dbDir, err)
		}
		return dbState{}, fmt.Errorf("checking vulnerability DB in %s: %w", dbDir, err)
	}
	if !needs {
		o.logger.DebugContext(ctx, "vulnerability DB is fresh", slog.String("dir", dbDir))
		return dbState{}, nil
	}

	regOpts := ftypes.RegistryOptions{Insecure: o.insecure}
	var failures []string
	for i, ref := range refs {
		o.logger.InfoContext(ctx, "downloading vulnerability DB", slog.String("repository", ref.String()))
		c := trivydb.NewClient(dbDir, true, trivydb.WithDBRepository([]name.Reference{ref}))
		err := c.Download(ctx, dbDir, regOpts)
		if err == nil {
			return dbState{downloaded: true, repository: o.dbRepositories[i]}, nil
		}
		if ctx.Err() != nil {
			return dbState{}, fmt.Errorf("downloading vulnerability DB: %w", ctx.Err())
		}
		o.logger.WarnContext(ctx, "vulnerability DB download failed",
			slog.String("repository", ref.String()), slog.String("error", oneLine(err)))
		failures = append(failures, fmt.Sprintf("%s (%s)", o.dbRepositories[i], oneLine(err)))
	}

	tried := strings.Join(failures, "; ")
	if meta, ok := existingDB(dbDir); ok {
		st := dbState{stale: true, age: time.Since(meta.UpdatedAt).Round(time.Minute), tried: tried}
		warnStale(ctx, o.logger, st)
		return st, nil
	}
	return dbState{}, fmt.Errorf("downloading vulnerability DB: every repository failed: %s; "+
		"set db-repository to a mirror you can reach, or restore cache-dir (with db/trivy.db) from a cache "+
		"and set skip-db-update", tried)
}

// warnStale says that the scan uses an older DB because the download failed.
func warnStale(ctx context.Context, log *slog.Logger, st dbState) {
	log.WarnContext(ctx, "using the vulnerability DB in the cache: the download failed",
		slog.String("age", st.age.String()), slog.String("tried", st.tried))
}

// existingDB reports whether dbDir holds a DB Trivy can open, with its
// metadata.
func existingDB(dbDir string) (metadata.Metadata, bool) {
	if _, err := os.Stat(tdb.Path(dbDir)); err != nil {
		return metadata.Metadata{}, false
	}
	meta, err := metadata.NewClient(dbDir).Get()
	if err != nil || meta.Version != tdb.SchemaVersion {
		return metadata.Metadata{}, false
	}
	return meta, true
}

// oneLine flattens a multi-line error message.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
