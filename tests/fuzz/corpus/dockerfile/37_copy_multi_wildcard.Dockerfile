FROM alpine
COPY hom* ?est.txt /mydir/
COPY arr[[]0].txt /mydir/
