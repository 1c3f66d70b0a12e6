FROM alpine
RUN echo one \
# a comment inside
    && echo two \

    && echo three
