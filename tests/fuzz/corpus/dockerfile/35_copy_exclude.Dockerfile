FROM alpine
COPY --exclude=*.txt --exclude=*.md . /src/
