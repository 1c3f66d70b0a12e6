FROM alpine AS a
SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
FROM a
RUN echo $0
