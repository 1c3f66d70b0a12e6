FROM alpine AS base
ENV APP=/srv
WORKDIR /srv
USER nobody
FROM base AS test
RUN echo $APP
WORKDIR tests
