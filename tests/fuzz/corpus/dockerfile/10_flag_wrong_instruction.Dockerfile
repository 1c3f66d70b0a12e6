FROM alpine
RUN --chown=1 echo
