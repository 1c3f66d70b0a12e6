ARG REG=docker.io
ARG IMG=${REG}/library/alpine
ARG TAG
FROM ${IMG}:${TAG:-latest}
