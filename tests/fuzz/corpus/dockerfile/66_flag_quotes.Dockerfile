FROM alpine
COPY --chown="1:2" --chmod='0755' a /b
