FROM alpine As MiXeD
FROM mixed
COPY --from=MIXED / /
