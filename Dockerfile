# Multi-stage build: compile with the full toolchain, ship only the binary on a small base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY adapters adapters
# Workspace members must all be present for cargo to load the workspace (tests/ holds two).
COPY tests tests
COPY src src
COPY deploy deploy
RUN cargo build --release --locked --bin botgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home botgate
COPY --from=build /src/target/release/botgate /usr/local/bin/botgate
COPY deploy/botgate.example.toml /etc/botgate/botgate.toml
USER 10001
ENV BOTGATE_CONFIG=/etc/botgate/botgate.toml
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/botgate"]
CMD ["serve"]
