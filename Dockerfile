# Two images from one build: the operator (--target manager) and the bundled trainer
# (--target trainer). Both are static Go binaries on distroless, run as the non-root user 65532.
# The local cluster (hack/) builds the same images without Docker: same binaries, same entrypoints,
# same user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY trainer/ trainer/
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager && \
    go build -trimpath -ldflags="-s -w" -o /out/trainer ./trainer/cmd/trainer

FROM gcr.io/distroless/static:nonroot AS trainer
COPY --from=build /out/trainer /trainer
USER 65532:65532
ENTRYPOINT ["/trainer"]

FROM gcr.io/distroless/static:nonroot AS manager
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
