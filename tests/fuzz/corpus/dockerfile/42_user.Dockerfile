FROM alpine
USER app:app
ENV U=root
USER $U
