FROM alpine
ENTRYPOINT ["top", "-b"]
ENTRYPOINT exec top -b
