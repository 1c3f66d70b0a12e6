FROM alpine
ENV P=8080
EXPOSE 80/tcp 443 ${P}/udp
