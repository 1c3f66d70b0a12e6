# lc-test-target: build
FROM alpine AS deps
RUN echo deps
FROM deps AS build
RUN echo build
FROM alpine AS other
RUN echo other
FROM build AS final
