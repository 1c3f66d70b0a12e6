FROM alpine
EXPOSE 8000-8010/tcp 53/udp
