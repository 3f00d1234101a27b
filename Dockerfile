# syntax=docker/dockerfile:1
# patientpulse: one static binary on distroless, run as the nonroot user.
# docker-compose.yml builds and runs it next to Mosquitto and InfluxDB 2.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a change to the code reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/patientpulse ./cmd/patientpulse \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/patientpulse /patientpulse
# A new named volume takes the owner of the image's directory: without this
# /data would belong to root and the nonroot user could not write to it.
COPY --from=build --chown=65532:65532 /out/data /data
# Inside a container the server must listen beyond loopback, and keep its
# registry in the volume.
ENV PATIENTPULSE_HTTP_ADDR=0.0.0.0:8080 \
    PATIENTPULSE_DATA_DIR=/data
EXPOSE 8080
VOLUME /data
ENTRYPOINT ["/patientpulse"]
CMD ["serve"]
