FROM alpine
LABEL a=${}
