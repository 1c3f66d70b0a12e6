FROM alpine
RUN <<EOF
apk add git
echo $HOME
EOF
