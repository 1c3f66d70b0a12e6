# lc-test-build-arg: V=2
FROM alpine
ARG V=1
ENV X=${V}
RUN echo $X
