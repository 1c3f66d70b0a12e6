FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build
FROM --platform=${TARGETPLATFORM} alpine
COPY --from=build /out /out
