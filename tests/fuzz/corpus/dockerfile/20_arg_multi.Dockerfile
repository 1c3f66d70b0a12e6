FROM alpine
ARG A=1 B=2 C
RUN echo $A$B$C
