# syntax=docker/dockerfile:1

# Build stage: modules are downloaded in their own layer, from go.mod and
# go.sum alone, so that editing source does not download them again.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# timetzdata embeds the zone database: schedules are in local time and the
# final image has no /usr/share/zoneinfo we want to depend on.
# docker build --build-arg VERSION=$(git describe --tags --always) . stamps `vigil version`.
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags "-s -w -X main.version=${VERSION}" -o /out/vigil ./cmd/vigil

# Final stage: static binary, CA certificates (for Twilio over HTTPS), and
# an unprivileged user (65532), nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vigil /vigil
COPY config/vigil.example.yaml /etc/vigil/vigil.yaml
# The example config listens on 127.0.0.1, which nothing outside the
# container can reach: containers must set VIGIL_LISTEN=0.0.0.0:8080, and
# the image does so here. Override it only together with EXPOSE/port maps.
ENV VIGIL_LISTEN=0.0.0.0:8080
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/vigil"]
CMD ["serve", "--config", "/etc/vigil/vigil.yaml"]
