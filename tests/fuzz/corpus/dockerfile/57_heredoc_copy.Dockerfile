FROM alpine
COPY <<EOF /etc/motd
Welcome $USER
EOF
COPY --chmod=755 <<-"EOT" /usr/bin/hello
	#!/bin/sh
	echo hello
	EOT
