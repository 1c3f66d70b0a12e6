# lc-test-target: release
FROM alpine AS build
FROM alpine AS test
