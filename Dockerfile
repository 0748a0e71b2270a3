# exportd: one static binary in a small image that runs it as a non-root
# user. docker-compose.yml builds this for the migrate job, the workers and
# the API; the subcommand is the container's command:
#
#   docker build -t exportd:local .
#   docker run --rm exportd:local worker --help
#
# Both base images are pinned. The Go version is go.mod's `go` line: bump
# them together.

FROM golang:1.26.8-alpine3.24 AS build
WORKDIR /src
# Modules first, so that editing code reuses the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Pure Go (pgx, parquet-go, arrow-go): a static binary that needs no libc.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/exportd ./cmd/exportd

FROM alpine:3.24.2
# ca-certificates for S3 and webhooks over TLS; tzdata for merchants' time
# zones. The working directory is exportd's home, where the local blob
# store (--blob-backend local, ./exports) can write; a volume mounted on
# /var/lib/exportd/exports takes that directory's ownership.
RUN apk add --no-cache ca-certificates tzdata \
    && addgroup -S -g 10001 exportd \
    && adduser -S -D -H -u 10001 -G exportd -h /var/lib/exportd exportd \
    && mkdir -p /var/lib/exportd/exports \
    && chown -R exportd:exportd /var/lib/exportd
COPY --from=build /out/exportd /usr/local/bin/exportd
USER 10001:10001
WORKDIR /var/lib/exportd
EXPOSE 8080
ENTRYPOINT ["exportd"]
CMD ["--help"]
