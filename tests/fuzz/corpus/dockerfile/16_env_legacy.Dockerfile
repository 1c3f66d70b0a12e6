FROM alpine
ENV MY_NAME John Doe
ENV PATH /opt/bin:$PATH
