FROM alpine AS a
FROM alpine AS b
FROM alpine AS c
COPY --from=a /x /x
