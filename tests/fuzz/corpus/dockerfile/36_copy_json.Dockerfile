FROM alpine
COPY ["dir with space/", "file 2", "/dest dir/"]
