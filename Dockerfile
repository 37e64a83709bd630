# gdm in a container: a static binary on a distroless base, run as non-root.
#   docker build -t gdm .
#   docker run -d --name gdm -p 10809:10809 -p 9810:9810 \
#     -v gdm-state:/var/lib/gdm -v gdm-run:/run/gdm -v /srv/images:/srv/images gdm
#   docker exec gdm /gdm create disk --table '0 2097152 linear /srv/images/disk.img 0'
# Backing files must be visible inside the container (a bind mount) and
# writable by uid 65532; block devices need --device and matching rights.
# The image carries what operators load elsewhere, in /usr/share/gdm: the
# Prometheus rules (gdm-rules.yml), the Grafana dashboard (gdm.json), the
# systemd unit for hosts without containers, and gdm(8)
# (`docker run --rm gdm man > gdm.8`). See packaging/ and the README.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/gdm ./cmd/gdm
RUN mkdir -p /out/root/var/lib/gdm /out/root/run/gdm /out/root/usr/share/gdm /out/root/usr/share/man/man8 \
 && /out/gdm man > /out/root/usr/share/man/man8/gdm.8 \
 && cp packaging/prometheus/gdm-rules.yml packaging/grafana/gdm.json packaging/systemd/gdm.service /out/root/usr/share/gdm/

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gdm /gdm
COPY --from=build --chown=65532:65532 /out/root/ /
USER 65532:65532
VOLUME ["/var/lib/gdm", "/run/gdm"]
EXPOSE 10809 9810
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/gdm", "ls", "--control", "/run/gdm/gdm.sock"]
ENTRYPOINT ["/gdm"]
CMD ["serve", "--nbd-listen", "0.0.0.0:10809", "--metrics-listen", "0.0.0.0:9810", \
     "--state-dir", "/var/lib/gdm", "--control", "/run/gdm/gdm.sock"]
