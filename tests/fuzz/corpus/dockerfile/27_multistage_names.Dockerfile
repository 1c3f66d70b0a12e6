FROM golang:1.22 AS Build
RUN go build -o /app
FROM alpine AS runtime
COPY --from=build /app /app
ENTRYPOINT ["/app"]
