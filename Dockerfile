# The layercache-server image, built by layercache itself (a dogfood):
#
#   make server-image        # = scripts/stage-server-image, then:
#   layercache build -f Dockerfile build/image/context -t layercache-server:dev \
#       --output type=oci,dest=build/image/layercache-server.oci
#
# The build context is the staging directory scripts/stage-server-image
# prepares, not the repository: the server binary and exactly the shared
# libraries it loads (ldd), so the image carries no distribution and nothing
# the server does not run. helm/layercache/README.md says how to push it.

# Stage 1: the runtime, which changes only when the libraries do, so its
# layers stay cached (and shared) across server rebuilds.
FROM scratch AS runtime
COPY libs/ /
COPY etc/ /etc/
COPY --chown=65532:65532 dirs/var/lib/layercache/ /var/lib/layercache/
COPY --chmod=1777 dirs/tmp/ /tmp/

# Stage 2: the server on top.
FROM runtime
COPY --chmod=0755 server/layercache-server /usr/local/bin/layercache-server
LABEL org.opencontainers.image.title="layercache-server" \
      org.opencontainers.image.description="Remote build cache (REAPI v2) for container image builds and Bazel"
ENV LAYERCACHE_DATA=/var/lib/layercache
USER 65532:65532
WORKDIR /var/lib/layercache
EXPOSE 9092 9090
VOLUME /var/lib/layercache
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/layercache-server"]
