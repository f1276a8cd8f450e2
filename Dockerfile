# syntax=docker/dockerfile:1
# Multi-stage build of the wspubsub server: a full Rust toolchain builds a release binary,
# and only that binary ships, in a small distroless image running as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wspubsub \
    && cp target/release/wspubsub /usr/local/bin/wspubsub

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/wspubsub /usr/local/bin/wspubsub
# The image's nonroot user (the tag's default, spelled out): files the server reads (TLS key,
# token public key, config) must be readable by uid 65532; see README, Deploying -> Docker.
USER 65532:65532
# Inside a container the server must listen on every interface to be reachable: `:8080` is
# [::]:8080 (IPv6 and IPv4), or 0.0.0.0:8080 where the container has no IPv6.
ENV PUBSUB_ADDR=:8080
EXPOSE 8080
# SIGTERM (docker stop) closes every client with 1001 and exits 0 within the close deadline.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wspubsub"]
CMD ["serve"]
