FROM alpine
VOLUME /data
VOLUME ["/var/log", "/var/db"]
VOLUME /a /b
