# Every go command that may compile Trivy needs GOEXPERIMENT=jsonv2.
export GOEXPERIMENT := jsonv2
GO ?= go
DOCKER ?= /usr/bin/docker
IMAGE ?= ghcr.io/intesys/ship-action:dev

.PHONY: build test image image-rootfs bench clean

build:
	$(GO) build -trimpath -ldflags="-s -w" -o ship ./cmd/ship

test:
	$(GO) test -count=1 -timeout 30m ./...

# /bin/sh is Debian's busybox-static (its sh runs busybox's applets itself):
# GitLab's docker executor runs a job's script with the image's shell.
image-rootfs:
	rm -rf dist/rootfs
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o dist/rootfs/usr/local/bin/ship ./cmd/ship
	install -D -m 0644 /etc/ssl/certs/ca-certificates.crt dist/rootfs/etc/ssl/certs/ca-certificates.crt
	install -d -m 1777 dist/rootfs/tmp
	install -D -m 0755 /bin/busybox dist/rootfs/bin/busybox
	ln -s busybox dist/rootfs/bin/sh

image: image-rootfs
	DOCKER_BUILDKIT=1 $(DOCKER) build -t $(IMAGE) .

bench:
	bench/run.sh

clean:
	rm -rf ship ship-out dist bench/out
