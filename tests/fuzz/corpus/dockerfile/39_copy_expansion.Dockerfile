FROM alpine
ENV SRC=app DST=/opt
COPY $SRC/ ${DST}/
COPY '$SRC' /lit/
COPY \$SRC /esc/
