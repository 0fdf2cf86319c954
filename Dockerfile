# The action image (ghcr.io/intesys/ship-action): a static `ship` binary, CA
# certificates, a /tmp and /bin/sh (a static busybox: GitLab's docker executor
# runs a job's script with the image's shell), on scratch. No Docker, no
# privileges needed.
#
# dist/rootfs is prepared by `make image-rootfs` (a CGO-free, stripped build,
# /bin/busybox from Debian's busybox-static and /bin/sh -> busybox);
# `make image` then builds this file with docker. ship can build it too:
#   ./ship --context . --tag ghcr.io/intesys/ship-action:dev --push
FROM scratch
COPY dist/rootfs/ /
ENV PATH=/usr/local/bin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/ship"]
