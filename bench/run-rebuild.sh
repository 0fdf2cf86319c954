#!/usr/bin/env bash
# Benchmark of issue 7 (local part): rebuilds of the Debian + apt-get
# python3 + COPY app Dockerfile of bench/run-apt.sh with a warm cache on the
# machine, pushed to a local registry, by
#   ship with --cache-dir (its layer cache: <cache-dir>/layers), and
#   docker build + docker push (BuildKit with its own warm build cache).
# Two cases, each run RUNS times, interleaved:
#   code change: only app/main.py changed since the last build;
#   no change:   nothing changed.
# Each tool first builds once (not timed) to fill its cache. The base
# image is in the registry and, for docker, already pulled. Every image
# built is then run with docker and its output checked. Prints medians and
# ratios and writes bench/out/results-rebuild.md.
# The registry-held cache of issue 7 (cache-repo, a fresh machine) is not
# built yet: this measures the cache on the machine only.
# Usage: bench/run-rebuild.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
OUT=bench/out
DOCKER=${SHIP_TEST_DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1 GOEXPERIMENT=jsonv2
mkdir -p "$OUT/bin"

echo "== tools"
go build -trimpath -ldflags="-s -w" -o "$OUT/bin/ship" ./cmd/ship
SHIP=$OUT/bin/ship

# shellcheck source=bench/lib.sh
. bench/lib.sh

echo "== registry"
start_registry "${BENCH_PORT:-5057}"
WORK=$(mktemp -d)
trap 'stop_registry; rm -rf "$WORK"' EXIT

echo "== Debian base"
push_debian_base

CTX=$WORK/ctx
mkdir -p "$CTX/app"
APT='apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'
cat >"$CTX/Dockerfile" <<DF
FROM $BASE
RUN $APT
COPY app/ /app/
CMD ["python3","/app/main.py"]
DF
app() { # app MESSAGE: the app prints MESSAGE
	printf 'print("%s")\n' "$1" >"$CTX/app/main.py"
}

now() { date +%s%N; }
declare -A T WANT
CACHE=$WORK/ship-cache
ship_build() { # ship_build KEY
	local t0; t0=$(now)
	"$SHIP" --context "$CTX" --tag "$REG/ship/app:$1" --push --insecure-registry "$REG" \
		--cache-dir "$CACHE" --scan=false >/dev/null 2>"$WORK/ship.err" || { cat "$WORK/ship.err"; exit 1; }
	T[ship,$1]=$(( ($(now) - t0) / 1000000 ))
}
docker_build() { # docker_build KEY
	local t0; t0=$(now)
	"$DOCKER" build -q -t "$REG/docker/app:$1" "$CTX" >/dev/null 2>"$WORK/docker.err" || { cat "$WORK/docker.err"; exit 1; }
	"$DOCKER" push -q "$REG/docker/app:$1" >/dev/null
	T[docker,$1]=$(( ($(now) - t0) / 1000000 ))
}

echo "== warm-up (fills both caches)"
app "warm"
ship_build warm
docker_build warm

echo "== $RUNS interleaved runs"
for r in $(seq 1 "$RUNS"); do
	msg="code change $r $(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	app "$msg"
	WANT[code$r]=$msg
	ship_build "code$r"; docker_build "code$r"
	WANT[same$r]=$msg
	ship_build "same$r"; docker_build "same$r"
	echo "run $r: code change: ship ${T[ship,code$r]} ms, docker ${T[docker,code$r]} ms; no change: ship ${T[ship,same$r]} ms, docker ${T[docker,same$r]} ms"
done

echo "== run the images"
for tool in ship docker; do
	for r in $(seq 1 "$RUNS"); do
		for k in "code$r" "same$r"; do
			img=$REG/$tool/app:$k
			"$DOCKER" rmi -f "$img" >/dev/null 2>&1 || true
			"$DOCKER" pull -q "$img" >/dev/null
			got=$("$DOCKER" run --rm "$img")
			[[ $got == "${WANT[$k]}" ]] || { echo "$tool $k: image printed \"$got\", want \"${WANT[$k]}\"" >&2; exit 1; }
		done
	done
done
echo "all images print their message"

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
vals() { for r in $(seq 1 "$RUNS"); do echo "${T[$1,$2$r]}"; done; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
SC=$(median $(vals ship code)); DC=$(median $(vals docker code))
SS=$(median $(vals ship same)); DS=$(median $(vals docker same))
{
	echo "| case | ship median ms | docker (BuildKit) median ms | ship / BuildKit | ship runs | docker runs |"
	echo "|---|---:|---:|---:|---|---|"
	echo "| code change (app/main.py), build + push | $SC | $DC | $(ratio "$SC" "$DC") | $(vals ship code | paste -sd' ') | $(vals docker code | paste -sd' ') |"
	echo "| no change, build + push | $SS | $DS | $(ratio "$SS" "$DS") | $(vals ship same | paste -sd' ') | $(vals docker same | paste -sd' ') |"
	echo
	echo "Machine: $(nproc) cores, $(uname -r), $("$DOCKER" version -f 'docker {{.Server.Version}}'), $(date -u +%F)."
} | tee "$OUT/results-rebuild.md"
