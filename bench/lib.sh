# Shared by the benchmark scripts: source it after setting OUT and DOCKER.

# start_registry PORT: starts the CNCF distribution registry on 127.0.0.1:PORT
# with storage in a new temp dir; sets REG, REGDIR and REGPID and stops and
# removes it (and the benchmark's images in dockerd) on exit.
start_registry() {
	REG=127.0.0.1:$1
	REGDIR=$(mktemp -d)
	cat >"$REGDIR/config.yml" <<CFG
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $REGDIR/data}, delete: {enabled: true}}
http: {addr: $REG}
CFG
	/usr/bin/docker-registry serve "$REGDIR/config.yml" >"$REGDIR/log" 2>&1 &
	REGPID=$!
	trap stop_registry EXIT
	for _ in $(seq 50); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
	limit_registry "$1"
}

# limit_registry PORT: with BENCH_REGISTRY_RATE set (a tc rate, e.g.
# 200mbit), what the registry sends (pulls) goes through a token bucket of
# that rate, as from a registry across a network; pushes are not limited.
# Needs root and tc; undone by stop_registry.
limit_registry() {
	[ -n "${BENCH_REGISTRY_RATE:-}" ] || return 0
	# htb: packets from the registry's port go to the limited class, the
	# rest (default: no such class) is sent unshaped.
	tc qdisc add dev lo root handle 1: htb default 99 r2q 2000
	tc class add dev lo parent 1: classid 1:20 htb rate "$BENCH_REGISTRY_RATE" ceil "$BENCH_REGISTRY_RATE"
	tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip sport "$1" 0xffff flowid 1:20
	echo "registry pulls limited to $BENCH_REGISTRY_RATE"
}

stop_registry() {
	kill "$REGPID" 2>/dev/null || true
	if [ -n "${BENCH_REGISTRY_RATE:-}" ]; then tc qdisc del dev lo root 2>/dev/null || true; fi
	"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REG/" | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
	rm -rf "$REGDIR"
}

# push_debian_base: makes (once, cached in $OUT) a Debian bookworm minbase
# rootfs with debootstrap and pushes it as $REG/bench/debian:bookworm; sets
# BASE. A file unique to this invocation makes the base layer new to
# dockerd, so no image left from an earlier run can satisfy BuildKit's pull.
push_debian_base() {
	if [[ ! -f $OUT/debian-rootfs/etc/debian_version ]]; then
		rm -rf "$OUT/debian-rootfs" "$OUT/debian-rootfs.tmp"
		debootstrap --variant=minbase bookworm "$OUT/debian-rootfs.tmp" http://deb.debian.org/debian >"$OUT/debootstrap.log"
		mv "$OUT/debian-rootfs.tmp" "$OUT/debian-rootfs"
	fi
	BASE=$REG/bench/debian:bookworm
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/debian-rootfs/etc/ship-bench-id"
	tar -C "$OUT/debian-rootfs" --numeric-owner -c . |
		"$DOCKER" import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["bash"]' - "$BASE" >/dev/null
	"$DOCKER" push -q "$BASE" >/dev/null
	"$DOCKER" rmi -f "$BASE" >/dev/null
}
