FROM golang:1.22
ARG CACHE=gomod
RUN --mount=type=cache,id=${CACHE},target=/go/pkg/mod --mount=type=secret,id=tok \
    --network=none --security=sandbox go build ./...
