# lc-test-target: 1
FROM alpine AS a
FROM alpine AS b
FROM alpine AS c
