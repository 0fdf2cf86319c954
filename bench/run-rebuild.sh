#!/usr/bin/env bash
# Benchmark of issue 7: rebuilds of the Debian + apt-get python3 + COPY app
# Dockerfile of bench/run-apt.sh, pushed to a local registry, by ship and by
# docker build + docker push (BuildKit). Three cases, each run RUNS times,
# interleaved:
#   fresh machine, code change: only app/main.py changed; nothing local
#     (ship: a new empty cache dir, the layer cache in the registry with
#     --cache-repo; docker: builder cache pruned and every image of the
#     benchmark removed, the cache read from the registry with --cache-from
#     and the inline cache of the previous image);
#   warm machine, code change: ship with its cache dir (<cache-dir>/layers),
#     docker with its build cache;
#   warm machine, no change: nothing changed;
#   warm machine, no change, SOURCE_DATE_EPOCH set (as ship sets it on
#     GitHub/GitLab from the commit time): ship only; also counts the blobs
#     the registry gained (want none).
# Each tool first builds once (not timed) to fill its caches. Every image
# built is then run with docker and its output checked. For the fresh-machine
# case it also counts how often the apt-get RUN came from the cache. ship
# runs with SHIP_DEBUG=1; the last run of each case leaves its log in
# bench/out/ship-rebuild-{fresh,code,same}.log. Prints medians and ratios
# and writes bench/out/results-rebuild.md.
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
declare -A HIT
blobs() { find "$REGDIR/data" -path '*/blobs/*' -name data | wc -l; }
declare -A NEWBLOBS
ship_build() { # ship_build KEY [fresh|epoch]: fresh = a new empty cache dir; epoch = SOURCE_DATE_EPOCH set
	local cache=$CACHE
	local epoch=()
	[[ ${2:-} == epoch ]] && epoch=(SOURCE_DATE_EPOCH=1700000000)
	local before; before=$(blobs)
	[[ ${2:-} == fresh ]] && cache=$(mktemp -d "$WORK/fresh.XXXX")
	local t0; t0=$(now)
	env "${epoch[@]}" SHIP_DEBUG=1 "$SHIP" --context "$CTX" --tag "$REG/ship/app:$1" --push --insecure-registry "$REG" \
		--cache-dir "$cache" --cache-repo "$REG/ship/cache" --scan=false >"$WORK/ship.out" 2>"$WORK/ship.err" ||
		{ cat "$WORK/ship.err"; exit 1; }
	T[ship,$1]=$(( ($(now) - t0) / 1000000 ))
	NEWBLOBS[$1]=$(( $(blobs) - before ))
	cp "$WORK/ship.err" "$OUT/ship-rebuild-${1%%[0-9]*}.log" # the last run's debug log of each case
	HIT[ship,$1]=0
	grep -q '"instruction":"RUN apt-get[^}]*"cached":true' "$WORK/ship.out" && HIT[ship,$1]=1
	[[ ${2:-} == fresh ]] && rm -rf "$cache"
	return 0
}
docker_build() { # docker_build KEY [fresh]: fresh = no build cache, no image
	if [[ ${2:-} == fresh ]]; then
		"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REG/" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
		"$DOCKER" builder prune -af >/dev/null
	fi
	local t0; t0=$(now)
	"$DOCKER" build --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1 --cache-from "$REG/docker/app:latest" \
		-t "$REG/docker/app:$1" -t "$REG/docker/app:latest" "$CTX" >/dev/null 2>"$WORK/docker.err" ||
		{ cat "$WORK/docker.err"; exit 1; }
	"$DOCKER" push -q "$REG/docker/app:$1" >/dev/null
	"$DOCKER" push -q "$REG/docker/app:latest" >/dev/null
	T[docker,$1]=$(( ($(now) - t0) / 1000000 ))
	HIT[docker,$1]=0
	grep -A1 'RUN apt-get' "$WORK/docker.err" | grep -q CACHED && HIT[docker,$1]=1
	return 0
}

echo "== warm-up (fills both caches)"
app "warm"
ship_build warm
docker_build warm

echo "== $RUNS interleaved runs"
for r in $(seq 1 "$RUNS"); do
	msg="fresh machine $r $(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	app "$msg"
	WANT[fresh$r]=$msg
	ship_build "fresh$r" fresh; docker_build "fresh$r" fresh
	msg="code change $r $(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	app "$msg"
	WANT[code$r]=$msg
	ship_build "code$r"; docker_build "code$r"
	WANT[same$r]=$msg
	ship_build "same$r"; docker_build "same$r"
	# As on CI: the first build with the epoch sets the times, the next one
	# must find every blob in the registry.
	WANT[epoch$r]=$msg
	ship_build "epochfirst$r" epoch; ship_build "epoch$r" epoch
	echo "run $r: fresh machine: ship ${T[ship,fresh$r]} ms (apt cached: ${HIT[ship,fresh$r]}), docker ${T[docker,fresh$r]} ms (apt cached: ${HIT[docker,fresh$r]}); code change: ship ${T[ship,code$r]} ms, docker ${T[docker,code$r]} ms; no change: ship ${T[ship,same$r]} ms, docker ${T[docker,same$r]} ms; no change with SOURCE_DATE_EPOCH: ship ${T[ship,epoch$r]} ms, ${NEWBLOBS[epoch$r]} new blobs"
done

echo "== run the images"
for tool in ship docker; do
	for r in $(seq 1 "$RUNS"); do
		keys=("fresh$r" "code$r" "same$r")
		[[ $tool == ship ]] && keys+=("epoch$r") # docker has no epoch case
		for k in "${keys[@]}"; do
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
hits() { local n=0; for r in $(seq 1 "$RUNS"); do n=$((n + HIT[$1,fresh$r])); done; echo "$n"; }
SF=$(median $(vals ship fresh)); DF=$(median $(vals docker fresh))
SC=$(median $(vals ship code)); DC=$(median $(vals docker code))
SS=$(median $(vals ship same)); DS=$(median $(vals docker same))
SE=$(median $(vals ship epoch))
newblobs() { for r in $(seq 1 "$RUNS"); do echo "${NEWBLOBS[epoch$r]}"; done; }
{
	echo "| case | ship median ms | docker (BuildKit) median ms | ship / BuildKit | ship runs | docker runs |"
	echo "|---|---:|---:|---:|---|---|"
	echo "| fresh machine, code change, cache in the registry, build + push | $SF | $DF | $(ratio "$SF" "$DF") | $(vals ship fresh | paste -sd' ') | $(vals docker fresh | paste -sd' ') |"
	echo "| warm machine, code change (app/main.py), build + push | $SC | $DC | $(ratio "$SC" "$DC") | $(vals ship code | paste -sd' ') | $(vals docker code | paste -sd' ') |"
	echo "| warm machine, no change, build + push | $SS | $DS | $(ratio "$SS" "$DS") | $(vals ship same | paste -sd' ') | $(vals docker same | paste -sd' ') |"
	echo "| warm machine, no change, SOURCE_DATE_EPOCH set (as on CI), build + push | $SE | – | – | $(vals ship epoch | paste -sd' ') | – |"
	echo
	echo "- no change with SOURCE_DATE_EPOCH: blobs the registry gained per ship run: $(newblobs | paste -sd' ') (want 0)"
	echo "- fresh machine: the apt-get RUN came from the cache in $(hits ship) of $RUNS ship runs, $(hits docker) of $RUNS BuildKit runs (--cache-from with inline cache)"
	echo
	echo "Machine: $(nproc) cores, $(uname -r), $("$DOCKER" version -f 'docker {{.Server.Version}}'), $(date -u +%F)."
} | tee "$OUT/results-rebuild.md"
