ARG TAG
FROM alpine:${TAG:?required}
