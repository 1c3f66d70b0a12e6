FROM debian:12
RUN ["/bin/echo", "hello world"]
