# The action image (ghcr.io/intesys/ship-action): a static `ship` binary, CA
# certificates and a /tmp, on scratch. No shell, no Docker, no privileges needed.
#
# dist/rootfs is prepared by `make image-rootfs` (a CGO-free, stripped build);
# `make image` then builds this file with docker. ship can build it too:
#   ./ship --context . --tag ghcr.io/intesys/ship-action:dev --push
FROM scratch
COPY dist/rootfs/ /
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/ship"]
