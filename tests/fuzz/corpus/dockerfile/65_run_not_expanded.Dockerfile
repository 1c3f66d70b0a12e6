FROM alpine
ENV A=1
RUN echo $A ${A:-x} '$A'
CMD echo $A
ENTRYPOINT ["echo", "$A"]
