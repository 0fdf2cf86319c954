#!/usr/bin/env bash
# Benchmark of issue 2: a COPY-only build (Debian base + ~2 MB / 100-file app
# tree + ENV/USER/CMD) from a cold start, pushed to a local registry, by
#   ship (build + push), docker build + docker push (BuildKit), crane append.
# Cold start for every run: each tool pushes to a new repository (nothing to
# skip but the base's layers, which are cross-mounted), ship gets a new
# cache dir, dockerd loses every image and its build cache (so it pulls the
# base again). Runs are interleaved; medians and ratios are printed and
# written to bench/out/results.md. Usage: bench/run.sh [RUNS]   (default 5)
#
# Needs: dockerd running, /usr/bin/docker-registry, debootstrap (first run
# only; the Debian rootfs is cached in bench/out), Go.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
OUT=bench/out
DOCKER=${SHIP_TEST_DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1 GOEXPERIMENT=jsonv2
mkdir -p "$OUT/bin"

echo "== tools"
go build -trimpath -ldflags="-s -w" -o "$OUT/bin/ship" ./cmd/ship
if [[ ! -x $OUT/bin/crane ]]; then
	GOBIN="$PWD/$OUT/bin" go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
fi
SHIP=$OUT/bin/ship CRANE=$OUT/bin/crane

# shellcheck source=bench/lib.sh
. bench/lib.sh

echo "== registry"
start_registry "${BENCH_PORT:-5055}"

echo "== Debian base"
push_debian_base

echo "== app context (100 files, ~2 MB)"
CTX=$OUT/ctx
rm -rf "$CTX" && mkdir -p "$CTX/app"
for i in $(seq -w 1 100); do
	d=$CTX/app/pkg$((10#$i % 10))
	mkdir -p "$d"
	head -c 15360 /dev/urandom | base64 -w 76 >"$d/module_$i.py"
done
cat >"$CTX/Dockerfile" <<DF
FROM $BASE
ENV APP_HOME=/app PYTHONUNBUFFERED=1
WORKDIR /app
COPY app/ /app/
USER 1000:1000
CMD ["python3", "-m", "app"]
DF
tar -C "$CTX" -cf "$OUT/app.tar" app

now() { date +%s%N; }
declare -A T
run_ship() {
	local cache; cache=$(mktemp -d)
	local t0; t0=$(now)
	"$SHIP" --context "$CTX" --tag "$REG/ship/app$1:1" --push --insecure-registry "$REG" \
		--cache-dir "$cache" --scan=false >/dev/null 2>"$OUT/ship.err" || { cat "$OUT/ship.err"; exit 1; }
	T[ship,$1]=$(( ($(now) - t0) / 1000000 ))
	rm -rf "$cache"
}
run_docker() {
	# Cold: no image of this benchmark and no build cache left in dockerd, so
	# the base is pulled again, as on a fresh CI runner.
	"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REG/" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
	"$DOCKER" builder prune -af >/dev/null
	local t0; t0=$(now)
	"$DOCKER" build -q -t "$REG/docker/app$1:1" "$CTX" >/dev/null
	"$DOCKER" push -q "$REG/docker/app$1:1" >/dev/null
	T[docker,$1]=$(( ($(now) - t0) / 1000000 ))
}
run_crane() {
	local t0; t0=$(now)
	"$CRANE" append --insecure -b "$BASE" -f "$OUT/app.tar" -t "$REG/crane/app$1:1" >/dev/null 2>&1
	T[crane,$1]=$(( ($(now) - t0) / 1000000 ))
}

echo "== $RUNS interleaved runs"
for r in $(seq 1 "$RUNS"); do
	run_crane "$r"; run_ship "$r"; run_docker "$r"
	echo "run $r: crane ${T[crane,$r]} ms, ship ${T[ship,$r]} ms, docker ${T[docker,$r]} ms"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
vals() { local k=$1; for r in $(seq 1 "$RUNS"); do echo "${T[$k,$r]}"; done; }
MS=$(median $(vals ship)); MD=$(median $(vals docker)); MC=$(median $(vals crane))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
{
	echo "| tool | median ms ($RUNS runs) | runs (ms) |"
	echo "|---|---:|---|"
	echo "| ship build+push | $MS | $(vals ship | paste -sd' ') |"
	echo "| crane append (floor) | $MC | $(vals crane | paste -sd' ') |"
	echo "| docker build + push (BuildKit) | $MD | $(vals docker | paste -sd' ') |"
	echo
	echo "- ship / crane append = $(ratio "$MS" "$MC") (target ≤ 2)"
	echo "- BuildKit / ship = $(ratio "$MD" "$MS") (target ≥ 20)"
	echo
	echo "Machine: $(nproc) cores, $(uname -r), $("$DOCKER" version -f 'docker {{.Server.Version}}'), $(date -u +%F)."
} | tee "$OUT/results.md"
