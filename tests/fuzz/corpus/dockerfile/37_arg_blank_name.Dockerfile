FROM alpine
ARG =value
