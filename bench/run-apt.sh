#!/usr/bin/env bash
# Benchmark of issue 3: a Debian bookworm build whose RUN installs python3
# with apt-get, plus COPY of a small app, from a cold start, pushed to a
# local registry, by
#   ship (build + push), docker build + docker push (BuildKit),
#   buildah bud --isolation=chroot + buildah push,
# and, as the floor, the RUN's command alone in a plain chroot of a copy of
# the base rootfs (no image download, layer or push).
# ship also runs inside a `docker run` container with Docker's default
# capabilities, as GitHub runs a container action (no CAP_SYS_ADMIN: a plain
# chroot and a copy of the base instead of overlay mounts); that time
# includes starting and removing the container.
# ship runs twice on the machine: with an empty --cache-dir (with overlay
# mounts the first build on a base extracts it in memory and records the use;
# the next build on it makes the base cache entry, which later builds reuse)
# and without one (the default: no base cache; the base is extracted in
# memory when it fits).
# ship runs with --scan=false: the other tools do not scan (issue 4's
# bench/run-scan.sh measures the scan). Cold start for every run: each tool pushes to a new repository, ship gets
# a new cache dir, dockerd loses every image of the benchmark and its build
# cache (so it pulls the base again), buildah gets new storage. apt-get in
# every build fetches from deb.debian.org: the same network cost for every
# tool. Runs are interleaved; medians, ratios and ship's peak RSS are
# printed and written to bench/out/results-apt.md. Afterwards every image
# is pulled and run with docker, and its output checked.
# Usage: bench/run-apt.sh [RUNS]   (default 3)
# With BENCH_REGISTRY_RATE=<tc rate> (e.g. 200mbit), every pull from the
# registry comes at that rate (bench/lib.sh limit_registry).
#
# Needs: dockerd running, /usr/bin/docker-registry, buildah, /usr/bin/time,
# debootstrap (first run only; the Debian rootfs is cached in bench/out and
# shared with bench/run.sh), Go, network access to deb.debian.org.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
OUT=bench/out
DOCKER=${SHIP_TEST_DOCKER:-/usr/bin/docker}
BUILDAH=${BUILDAH:-buildah}
export DOCKER_BUILDKIT=1 GOEXPERIMENT=jsonv2
mkdir -p "$OUT/bin"

echo "== tools"
go build -trimpath -ldflags="-s -w" -o "$OUT/bin/ship" ./cmd/ship
SHIP=$OUT/bin/ship
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$OUT/bin/ship-static" ./cmd/ship
command -v "$BUILDAH" >/dev/null || { echo "buildah missing (apt-get install -y buildah)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing (apt-get install -y time)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. bench/lib.sh

echo "== registry"
start_registry "${BENCH_PORT:-5056}"
WORK=$(mktemp -d)
trap 'stop_registry; "$DOCKER" rmi -f ship-bench:apt >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

echo "== Debian base"
push_debian_base

echo "== ship's container image (static ship, busybox, /tmp)"
SHIP_IMAGE=ship-bench:apt
img=$WORK/shipimg
mkdir -p "$img/bin" "$img/tmp" && chmod 1777 "$img/tmp"
cp "$OUT/bin/ship-static" "$img/ship" && cp /usr/bin/busybox "$img/bin/busybox" && ln -s busybox "$img/bin/sh"
tar -C "$img" -c . | "$DOCKER" import - "$SHIP_IMAGE" >/dev/null

echo "== app context"
CTX=$OUT/ctx-apt
rm -rf "$CTX" && mkdir -p "$CTX/app"
WANT="hello from python $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >"$CTX/app/main.py" <<PY
import sys
print("$WANT on " + sys.version.split()[0])
PY
APT='apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'
cat >"$CTX/Dockerfile" <<DF
FROM $BASE
RUN $APT
COPY app/ /app/
CMD ["python3","/app/main.py"]
DF

now() { date +%s%N; }
declare -A T RSS ANON SHM LOAD
# timed_ship KEY RUN ARGS...: runs ship with ARGS under /usr/bin/time, sets
# T[KEY,RUN], RSS[KEY,RUN] (peak RSS, MB), ANON[KEY,RUN] (peak RssAnon, MB)
# and SHM[KEY,RUN] (peak growth of the machine's Shmem, MB: the tmpfs
# mounts that hold RUN's changes, and the base without --cache-dir, are not
# in ship's RSS).
timed_ship() {
	local key=$1 r=$2; shift 2
	local shm0 k v _; shm0=$(awk '/^Shmem:/ {print $2}' /proc/meminfo)
	local t0; t0=$(now)
	/usr/bin/time -v -o "$WORK/$key.time" "$SHIP" "$@" >/dev/null 2>"$WORK/$key.err" &
	local tpid=$! anon=0 shm=0
	# The peak of /usr/bin/time counts the pages of ship's executable it
	# touched (file-backed, shared, reclaimable; Trivy makes it 200 MB):
	# ship's own memory is RssAnon, sampled every 0.2 s with shell builtins.
	local spid=""
	while kill -0 "$tpid" 2>/dev/null; do
		if [[ -z $spid && -r /proc/$tpid/task/$tpid/children ]]; then
			read -r spid _ <"/proc/$tpid/task/$tpid/children" || true
		fi
		if [[ -n $spid ]]; then
			while read -r k v _; do
				[[ $k == RssAnon: ]] && ((v > anon)) && anon=$v
			done 2>/dev/null <"/proc/$spid/status" || true
		fi
		while read -r k v _; do
			[[ $k == Shmem: ]] && ((v - shm0 > shm)) && shm=$((v - shm0))
		done </proc/meminfo
		sleep 0.2
	done
	wait "$tpid" || { cat "$WORK/$key.err" "$WORK/$key.time"; exit 1; }
	T[$key,$r]=$(( ($(now) - t0) / 1000000 ))
	RSS[$key,$r]=$(awk -F': ' '/Maximum resident set size/ {print int($2/1024)}' "$WORK/$key.time")
	ANON[$key,$r]=$((anon / 1024))
	SHM[$key,$r]=$((shm / 1024))
}
run_ship() {
	local cache; cache=$(mktemp -d)
	timed_ship ship "$1" --context "$CTX" --tag "$REG/ship/app$1:1" --push \
		--insecure-registry "$REG" --cache-dir "$cache" --scan=false
	cp "$WORK/ship.err" "$OUT/ship-apt.log"
	rm -rf "$cache"
}
run_ship_default() {
	# As most users run it: no --cache-dir (the build's caches live in a
	# temporary directory removed after the run).
	timed_ship shipd "$1" --context "$CTX" --tag "$REG/shipd/app$1:1" --push --insecure-registry "$REG" --scan=false
}
run_ship_container() {
	local t0; t0=$(now)
	"$DOCKER" run --rm --network host -v "$PWD/$CTX:/ctx:ro" "$SHIP_IMAGE" /ship --context /ctx \
		--tag "$REG/shipc/app$1:1" --push --insecure-registry "$REG" --cache-dir /tmp/cache --scan=false \
		>/dev/null 2>"$WORK/shipc.err" || { cat "$WORK/shipc.err"; exit 1; }
	T[shipc,$1]=$(( ($(now) - t0) / 1000000 ))
	cp "$WORK/shipc.err" "$OUT/ship-apt-container.log"
}
run_docker() {
	# Cold: no image of this benchmark and no build cache left in dockerd, so
	# the base is pulled again, as on a fresh CI runner.
	"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REG/" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
	"$DOCKER" builder prune -af >/dev/null
	local t0; t0=$(now)
	"$DOCKER" build -q -t "$REG/docker/app$1:1" "$CTX" >/dev/null 2>"$WORK/docker.err" ||
		{ cat "$WORK/docker.err"; exit 1; }
	"$DOCKER" push -q "$REG/docker/app$1:1" >/dev/null
	T[docker,$1]=$(( ($(now) - t0) / 1000000 ))
}
run_floor() {
	local root; root=$(mktemp -d "$WORK/floor.XXXX")
	cp -a "$OUT/debian-rootfs/." "$root/"
	rm -f "$root/etc/resolv.conf" && cp /etc/resolv.conf "$root/etc/resolv.conf"
	local t0; t0=$(now)
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" /bin/sh -c "$APT" \
		>/dev/null 2>"$WORK/floor.err" || { cat "$WORK/floor.err"; exit 1; }
	T[floor,$1]=$(( ($(now) - t0) / 1000000 ))
	rm -rf "$root"
}
run_buildah() {
	local store; store=$(mktemp -d "$WORK/buildah.XXXX")
	local b=("$BUILDAH" --root "$store/root" --runroot "$store/run" --storage-driver "$BUILDAH_DRIVER")
	local t0; t0=$(now)
	"${b[@]}" bud --isolation=chroot --tls-verify=false -q -t "$REG/buildah/app$1:1" "$CTX" >/dev/null 2>"$WORK/buildah.err" ||
		{ cat "$WORK/buildah.err"; exit 1; }
	"${b[@]}" push --tls-verify=false -q "$REG/buildah/app$1:1" >/dev/null 2>>"$WORK/buildah.err" ||
		{ cat "$WORK/buildah.err"; exit 1; }
	T[buildah,$1]=$(( ($(now) - t0) / 1000000 ))
	"${b[@]}" rmi -af >/dev/null 2>&1 || true
	umount -R "$store/root" 2>/dev/null || true
	rm -rf "$store"
}

# overlay when this kernel lets buildah use it, vfs (a full copy per layer)
# otherwise.
BUILDAH_DRIVER=${BUILDAH_DRIVER:-}
if [[ -z $BUILDAH_DRIVER ]]; then
	probe=$(mktemp -d "$WORK/probe.XXXX")
	if "$BUILDAH" --root "$probe/root" --runroot "$probe/run" --storage-driver overlay \
		from --tls-verify=false -q "$BASE" >/dev/null 2>&1; then
		BUILDAH_DRIVER=overlay
	else
		BUILDAH_DRIVER=vfs
	fi
	"$BUILDAH" --root "$probe/root" --runroot "$probe/run" --storage-driver "$BUILDAH_DRIVER" rm -a >/dev/null 2>&1 || true
	"$BUILDAH" --root "$probe/root" --runroot "$probe/run" --storage-driver "$BUILDAH_DRIVER" rmi -af >/dev/null 2>&1 || true
	umount -R "$probe/root" 2>/dev/null || true
	rm -rf "$probe"
fi
echo "buildah storage driver: $BUILDAH_DRIVER"

echo "== $RUNS interleaved runs"
for r in $(seq 1 "$RUNS"); do
	LOAD[$r]=$(cut -d' ' -f1 /proc/loadavg)
	run_floor "$r"; run_ship "$r"; run_ship_default "$r"; run_ship_container "$r"; run_docker "$r"; run_buildah "$r"
	echo "run $r (load ${LOAD[$r]}): floor ${T[floor,$r]} ms, ship ${T[ship,$r]} ms (peak RSS ${RSS[ship,$r]} MB, anonymous ${ANON[ship,$r]} MB, tmpfs ${SHM[ship,$r]} MB), ship without cache dir ${T[shipd,$r]} ms (peak RSS ${RSS[shipd,$r]} MB, anonymous ${ANON[shipd,$r]} MB, tmpfs ${SHM[shipd,$r]} MB), ship in a container ${T[shipc,$r]} ms, docker ${T[docker,$r]} ms, buildah ${T[buildah,$r]} ms"
done

echo "== run the images"
"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REG/" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
for tool in ship shipd shipc docker buildah; do
	for r in $(seq 1 "$RUNS"); do
		img=$REG/$tool/app$r:1
		"$DOCKER" pull -q "$img" >/dev/null
		got=$("$DOCKER" run --rm "$img")
		case $got in
		"$WANT on 3."*) echo "$tool run $r: ok: $got" ;;
		*) echo "$tool run $r: image printed \"$got\", want \"$WANT on 3.*\"" >&2; exit 1 ;;
		esac
	done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
vals() { local k=$1; for r in $(seq 1 "$RUNS"); do echo "${T[$k,$r]}"; done; }
rss() { for r in $(seq 1 "$RUNS"); do echo "${RSS[$1,$r]}"; done; }
anonv() { for r in $(seq 1 "$RUNS"); do echo "${ANON[$1,$r]}"; done; }
shmv() { for r in $(seq 1 "$RUNS"); do echo "${SHM[$1,$r]}"; done; }
MS=$(median $(vals ship)); MSD=$(median $(vals shipd)); MC=$(median $(vals shipc)); MD=$(median $(vals docker)); MB=$(median $(vals buildah)); MF=$(median $(vals floor))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
{
	echo "| tool | median ms ($RUNS runs) | runs (ms) |"
	echo "|---|---:|---|"
	echo "| apt-get in a plain chroot (the RUN alone, floor) | $MF | $(vals floor | paste -sd' ') |"
	echo "| ship build+push (empty --cache-dir) | $MS | $(vals ship | paste -sd' ') |"
	echo "| ship build+push without --cache-dir (the default) | $MSD | $(vals shipd | paste -sd' ') |"
	echo "| ship build+push in a docker run container (chroot mode, as a GitHub container action) | $MC | $(vals shipc | paste -sd' ') |"
	echo "| docker build + push (BuildKit) | $MD | $(vals docker | paste -sd' ') |"
	echo "| buildah bud --isolation=chroot + push ($BUILDAH_DRIVER) | $MB | $(vals buildah | paste -sd' ') |"
	echo
	echo "- ship / BuildKit = $(ratio "$MS" "$MD") (target ≤ 0.5); without --cache-dir $(ratio "$MSD" "$MD")"
	echo "- ship in a container / BuildKit = $(ratio "$MC" "$MD")"
	echo "- ship / buildah = $(ratio "$MS" "$MB")"
	echo "- ship / floor = $(ratio "$MS" "$MF"), BuildKit / floor = $(ratio "$MD" "$MF")"
	echo "- load average (1 min) at the start of each run: $(for r in $(seq 1 "$RUNS"); do echo "${LOAD[$r]}"; done | paste -sd' ')"
	echo "- ship peak RSS: max $(rss ship | sort -n | tail -1) MB, runs $(rss ship | paste -sd' ') MB (target ≤ 300 MB); without --cache-dir max $(rss shipd | sort -n | tail -1) MB, runs $(rss shipd | paste -sd' ') MB"
	echo "- of which anonymous memory (RssAnon, sampled every 0.2 s; the rest is ship's executable): max $(anonv ship | sort -n | tail -1) MB, runs $(anonv ship | paste -sd' ') MB; without --cache-dir max $(anonv shipd | sort -n | tail -1) MB, runs $(anonv shipd | paste -sd' ') MB"
	echo "- the machine's Shmem grew by (tmpfs: RUN's changes, and the base without --cache-dir; sampled every 0.2 s): max $(shmv ship | sort -n | tail -1) MB, runs $(shmv ship | paste -sd' ') MB; without --cache-dir max $(shmv shipd | sort -n | tail -1) MB, runs $(shmv shipd | paste -sd' ') MB"
	echo
	echo "Machine: $(nproc) cores, $(uname -r), $("$DOCKER" version -f 'docker {{.Server.Version}}'), $("$BUILDAH" --version | cut -d' ' -f1-3), $(date -u +%F)."
} | tee "$OUT/results-apt.md"
