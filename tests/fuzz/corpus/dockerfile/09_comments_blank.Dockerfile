# leading comment

FROM alpine

   # indented comment
RUN true
