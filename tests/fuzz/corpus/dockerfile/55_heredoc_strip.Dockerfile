FROM alpine
RUN <<-EOT
	echo indented
		echo twice
	EOT
