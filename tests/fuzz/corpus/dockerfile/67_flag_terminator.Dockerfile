FROM alpine
RUN -- --not-a-flag
