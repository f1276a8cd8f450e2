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
# Inside a container the server must listen on every interface to be reachable.
ENV PUBSUB_ADDR=0.0.0.0:8080
EXPOSE 8080
# SIGTERM (docker stop) closes every client with 1001 and exits 0 within the close deadline.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wspubsub"]
CMD ["serve"]
