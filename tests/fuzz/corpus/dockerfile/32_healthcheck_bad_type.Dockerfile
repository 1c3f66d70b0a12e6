FROM alpine
HEALTHCHECK CHECK curl localhost
