FROM alpine AS assets
RUN echo a > /a
FROM alpine AS unused
FROM alpine
RUN --mount=type=bind,from=assets,target=/assets cat /assets/a
