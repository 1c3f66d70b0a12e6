FROM alpine
COPY --chown=55:mygroup --chmod=644 files* /somedir/
COPY --link --parents ./a/b /dst/
