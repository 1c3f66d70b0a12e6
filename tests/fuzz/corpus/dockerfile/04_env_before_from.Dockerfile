ARG A=1
ENV B=2
FROM alpine
