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
}

stop_registry() {
	kill "$REGPID" 2>/dev/null || true
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
