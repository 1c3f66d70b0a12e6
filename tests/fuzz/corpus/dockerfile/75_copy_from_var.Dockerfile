FROM alpine AS src
FROM alpine
ARG STAGE=src
COPY --from=${STAGE} /x /x
