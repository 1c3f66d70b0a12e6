FROM alpine AS me
COPY --from=me /a /b
