FROM alpine
ENV A=apple F=file.tar.gz
ENV B=${A:+set} C=${UNSET:-default} D=${A%le} E=${F##*.} G=${F/tar/zip}
LABEL x=${UNSET-dash} y=${A:-x}${UNSET+plus}
