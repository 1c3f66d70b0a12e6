#  ESCAPE = `
FROM alpine
RUN echo `
  done
