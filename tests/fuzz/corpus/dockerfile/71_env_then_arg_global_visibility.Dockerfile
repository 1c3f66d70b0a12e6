ARG G=global
FROM alpine
ENV E=${G:-not-visible}
ARG G
ENV F=$G
