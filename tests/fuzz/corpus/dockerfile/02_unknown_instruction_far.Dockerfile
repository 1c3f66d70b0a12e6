FROM alpine
  FOOBAR x
