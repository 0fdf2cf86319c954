#!/usr/bin/env bash
# Benchmark of issue 4: scanning the Debian bookworm + python3 image of
# bench/run-apt.sh with ship (Trivy as a library, in process) and with the
# Trivy CLI (`trivy image`, the same Trivy version), same DB, same
# scanners (vuln,secret).
#
# Each round, interleaved:
# - `ship scan IMAGE` and `trivy image IMAGE` of the pushed image, cold (a
#   new cache dir holding only the DB) and warm (the same cache dir again:
#   layers analysed before): both fetch and analyse the same image;
# - the whole pipeline from a cold state: `ship` build + push + scan,
#   `ship` build + push without the scan (--scan=false), `ship` build +
#   push + scan without --cache-dir (the default), and `docker
#   build` + `docker push` + `trivy image` one after another. ship's scan
#   step inside its pipeline (the image it holds, no pull; the base image
#   analysed while the build runs) costs the difference of the first two:
#   that is what is compared with `trivy image`, cold.
# Medians and ratios are printed and written to bench/out/results-scan.md.
# Usage: bench/run-scan.sh [RUNS]   (default 3)
# With SHIP_BASELINE=<another ship binary>, the pipeline with the scan is
# also run with it (after the others, each round): an A/B of a change.
# With BENCH_REGISTRY_RATE=<tc rate> (e.g. 200mbit), everything pulled from
# the registry comes at that rate (bench/lib.sh limit_registry).
# ship's debug logs of the last round's pipelines are kept in
# bench/out/ship-pship.log, ship-pnoscan.log (and ship-pbase.log); only the
# last round logs at debug level.
#
# Needs: dockerd, /usr/bin/docker-registry, Go, network access to
# deb.debian.org (apt-get in the image), and the Trivy CLI: $TRIVY, else
# bench/out/bin/trivy, built on first use from the Go module proxy
# (github.com/aquasecurity/trivy/cmd/trivy at the version in go.mod; a cold
# build takes about 7 minutes here). No Trivy DB can be downloaded here:
# both tools get the same DB, made by bench/mkdb from the fixtures of
# internal/scan/testdata/db (a few advisories; the work measured is the
# analysis of the image and the lookups, not the DB's size).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
OUT=bench/out
DOCKER=${SHIP_TEST_DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1 GOEXPERIMENT=jsonv2
mkdir -p "$OUT/bin"

echo "== tools"
go build -trimpath -ldflags="-s -w" -o "$OUT/bin/ship" ./cmd/ship
go build -o "$OUT/bin/mkdb" ./bench/mkdb
SHIP=$OUT/bin/ship
TRIVY=${TRIVY:-$OUT/bin/trivy}
if [[ ! -x $TRIVY ]]; then
	ver=$(go list -m -f '{{.Version}}' github.com/aquasecurity/trivy)
	tmp=$(mktemp -d)
	(cd "$tmp" && printf 'module trivycli\n\ngo 1.26\n' >go.mod &&
		GOFLAGS=-mod=mod go get "github.com/aquasecurity/trivy/cmd/trivy@$ver" >/dev/null 2>&1 &&
		go build -trimpath -ldflags="-s -w" -o "$OLDPWD/$TRIVY" github.com/aquasecurity/trivy/cmd/trivy)
	rm -rf "$tmp"
fi
"$TRIVY" --version | head -1

# shellcheck source=bench/lib.sh
. bench/lib.sh

echo "== registry"
start_registry "${BENCH_PORT:-5057}"
WORK=$(mktemp -d)
trap 'stop_registry; rm -rf "$WORK"' EXIT

echo "== Debian base"
push_debian_base

echo "== DB"
"$OUT/bin/mkdb" "$WORK/db" internal/scan/testdata/db/*.yaml
newcache() { local c; c=$(mktemp -d "$WORK/cache.XXXX"); cp -r "$WORK/db" "$c/db"; echo "$c"; }

echo "== app context and image"
CTX=$OUT/ctx-scan
rm -rf "$CTX" && mkdir -p "$CTX/app"
cat >"$CTX/app/main.py" <<'PY'
import sys
print("hello from python " + sys.version.split()[0])
PY
APT='apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'
cat >"$CTX/Dockerfile" <<DF
FROM $BASE
RUN $APT
COPY app/ /app/
CMD ["python3","/app/main.py"]
DF
IMAGE=$REG/scan/app:1
"$SHIP" --context "$CTX" --tag "$IMAGE" --push --insecure-registry "$REG" --scan=false >/dev/null 2>"$WORK/build.err" ||
	{ cat "$WORK/build.err"; exit 1; }

now() { date +%s%N; }
declare -A T
ship_scan() { # $1 key, $2 cache dir
	local t0; t0=$(now)
	"$SHIP" scan "$IMAGE" --insecure-registry "$REG" --cache-dir "$2" --skip-db-update \
		--scanners vuln,secret --findings-json "$WORK/f.json" >/dev/null 2>"$WORK/ship.err" ||
		{ cat "$WORK/ship.err"; exit 1; }
	T[$1]=$(( ($(now) - t0) / 1000000 ))
}
trivy_scan() { # $1 key, $2 cache dir
	local t0; t0=$(now)
	"$TRIVY" image --cache-dir "$2" --skip-db-update --skip-java-db-update --offline-scan \
		--scanners vuln,secret --insecure --quiet --format json --output "$WORK/t.json" "$IMAGE" 2>"$WORK/trivy.err" ||
		{ cat "$WORK/trivy.err"; exit 1; }
	T[$1]=$(( ($(now) - t0) / 1000000 ))
}
pipeline_ship() { # $1 run, $2 key, [$3 binary], [more flags]
	local r=$1 key=$2 bin=${3:-$SHIP}
	shift $(( $# < 3 ? $# : 3 ))
	local c; c=$(newcache)
	local debug=; [ "$r" = "$RUNS" ] && debug=1
	local t0; t0=$(now)
	SHIP_DEBUG=$debug "$bin" --context "$CTX" --tag "$REG/pipe/$key$r:1" --push --insecure-registry "$REG" --cache-dir "$c" \
		--skip-db-update --scanners vuln,secret --findings-json "$WORK/p.json" "$@" >/dev/null 2>"$OUT/ship-$key.log" ||
		{ cat "$OUT/ship-$key.log"; exit 1; }
	T[$key,$r]=$(( ($(now) - t0) / 1000000 ))
	rm -rf "$c"
}
pipeline_ship_default() { # $1 run: without --cache-dir, as most users run it (the DB in
	# $XDG_CACHE_HOME/ship, the default place; no base cache: the base is
	# extracted in memory when it fits)
	local r=$1 x; x=$(mktemp -d "$WORK/xdg.XXXX")
	mkdir -p "$x/ship" && cp -r "$WORK/db" "$x/ship/db"
	local t0; t0=$(now)
	XDG_CACHE_HOME=$x "$SHIP" --context "$CTX" --tag "$REG/pipe/pdefault$r:1" --push --insecure-registry "$REG" \
		--skip-db-update --scanners vuln,secret --findings-json "$WORK/pd.json" >/dev/null 2>"$WORK/pdefault.err" ||
		{ cat "$WORK/pdefault.err"; exit 1; }
	T[pdefault,$r]=$(( ($(now) - t0) / 1000000 ))
	rm -rf "$x"
}
pipeline_docker() { # $1 run
	"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REG/" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
	"$DOCKER" builder prune -af >/dev/null
	local c; c=$(newcache)
	local tag=$REG/pipe/docker$1:1
	local t0; t0=$(now)
	"$DOCKER" build -q -t "$tag" "$CTX" >/dev/null
	"$DOCKER" push -q "$tag" >/dev/null
	"$TRIVY" image --cache-dir "$c" --skip-db-update --skip-java-db-update --offline-scan \
		--scanners vuln,secret --insecure --quiet --format json --output "$WORK/pt.json" "$tag" 2>"$WORK/ptrivy.err" ||
		{ cat "$WORK/ptrivy.err"; exit 1; }
	T[pdocker,$1]=$(( ($(now) - t0) / 1000000 ))
	rm -rf "$c"
}

echo "== $RUNS interleaved runs"
for r in $(seq "$RUNS"); do
	sc=$(newcache); tc=$(newcache)
	ship_scan "shipcold,$r" "$sc"; trivy_scan "trivycold,$r" "$tc"
	ship_scan "shipwarm,$r" "$sc"; trivy_scan "trivywarm,$r" "$tc"
	rm -rf "$sc" "$tc"
	pipeline_ship "$r" pship; pipeline_ship "$r" pnoscan "$SHIP" --scan=false; pipeline_ship_default "$r"; pipeline_docker "$r"
	if [ -n "${SHIP_BASELINE:-}" ]; then pipeline_ship "$r" pbase "$SHIP_BASELINE"; fi
	T[pstep,$r]=$(( T[pship,$r] - T[pnoscan,$r] ))
	echo "run $r: scan cold ship ${T[shipcold,$r]} / trivy ${T[trivycold,$r]} ms, warm ship ${T[shipwarm,$r]} / trivy ${T[trivywarm,$r]} ms, pipeline ship ${T[pship,$r]} (without scan ${T[pnoscan,$r]}, without --cache-dir ${T[pdefault,$r]}) / docker+trivy ${T[pdocker,$r]} ms${SHIP_BASELINE:+ / baseline ship ${T[pbase,$r]} ms}"
done

vals() { for r in $(seq "$RUNS"); do echo "${T[$1,$r]}"; done; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
SC=$(vals shipcold | median); TC=$(vals trivycold | median)
SW=$(vals shipwarm | median); TW=$(vals trivywarm | median)
PS=$(vals pship | median); PDEF=$(vals pdefault | median); PD=$(vals pdocker | median); PN=$(vals pnoscan | median)
STEP=$(vals pstep | median)
{
	echo "| measurement | median ms ($RUNS runs) | runs (ms) |"
	echo "|---|---:|---|"
	echo "| ship scan, cold | $SC | $(vals shipcold | paste -sd' ') |"
	echo "| trivy image, cold | $TC | $(vals trivycold | paste -sd' ') |"
	echo "| ship scan, warm | $SW | $(vals shipwarm | paste -sd' ') |"
	echo "| trivy image, warm | $TW | $(vals trivywarm | paste -sd' ') |"
	echo "| ship build + push + scan | $PS | $(vals pship | paste -sd' ') |"
	echo "| ship build + push + scan without --cache-dir (the default) | $PDEF | $(vals pdefault | paste -sd' ') |"
	echo "| ship build + push, no scan | $PN | $(vals pnoscan | paste -sd' ') |"
	echo "| ship's scan step in its pipeline (with scan - without, per round) | $STEP | $(vals pstep | paste -sd' ') |"
	echo "| docker build + docker push + trivy image | $PD | $(vals pdocker | paste -sd' ') |"
	if [ -n "${SHIP_BASELINE:-}" ]; then
		echo "| baseline ship build + push + scan (\$SHIP_BASELINE) | $(vals pbase | median) | $(vals pbase | paste -sd' ') |"
	fi
	echo
	echo "- scan step cold, in ship's pipeline: (ship with scan - without) / trivy image cold = $(ratio "$STEP" "$TC") (target ≤ 0.5); difference of the medians: $(ratio $((PS - PN)) "$TC")"
	echo "- ship scan IMAGE cold (fetches the image, as trivy does): ship / trivy = $(ratio "$SC" "$TC")"
	echo "- scan warm: ship / trivy = $(ratio "$SW" "$TW") (target ≤ 1)"
	echo "- pipeline: ship / (docker + trivy) = $(ratio "$PS" "$PD") (target ≤ 0.4); without --cache-dir $(ratio "$PDEF" "$PD")"
	echo
	echo "Machine: $(nproc) cores, $(uname -r), $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null), $("$TRIVY" --version | head -1), $(date -u +%F)."
} | tee "$OUT/results-scan.md"
