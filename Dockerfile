# syntax=docker/dockerfile:1
#
# haul's container image: `docker build -t <registry>/haul:<tag> .`
#
# Decision: x86_64-unknown-linux-gnu on debian:bookworm-slim, not a static musl binary on distroless.
#
#   * The runtime image cannot be distroless anyway: haul shells out to git (>= 2.32; bookworm
#     ships 2.39), to ssh through git for SSH remotes, to /bin/sh (git's credential helper is a
#     shell function), to `kubectl kustomize` for the kustomize-build step and to `helm
#     template` for the helm-template step. Those need a Debian userland, and with it glibc.
#     A static musl binary would gain nothing there (and musl's malloc is known to be slow
#     under multi-threaded load).
#   * The -gnu binary links dynamically against glibc only (libc, libm, libgcc_s, the loader):
#     every crate, including aws-lc (the crypto of rustls, kube and the AWS SDK, compiled from C
#     by aws-lc-sys with the cc crate), is linked statically.
#     Build and runtime both use Debian 12 (glibc 2.36), so the symbol versions match.
#   * hack/build-static.sh runs this stage's cargo build (same flags, with an explicit
#     --target x86_64-unknown-linux-gnu) on a Debian 12 machine without Docker and checks the result (size, `ldd`, newest GLIBC symbol <= 2.36, smoke run). The musl
#     target could not be tried there: its rust-std is not installed and rustup cannot download
#     offline. Measured there (rustc 1.95.0, strip=symbols): 33.0 MiB (34,652,160 bytes);
#     NEEDED libgcc_s.so.1, libm.so.6, libc.so.6, ld-linux-x86-64.so.2; newest symbol GLIBC_2.34.
#   * This Dockerfile itself has not been built in haul's CI or development machine: there is no
#     Docker daemon there and base images cannot be pulled. Its build command is proven by
#     hack/build-static.sh; its runtime stage is assembled without Docker by hack/build-image.sh
#     (mmdebstrap, the same packages, user, paths, ENV and ENTRYPOINT) into a tarball that
#     `docker load` / `podman load` read, and hack/check-image.sh runs that image's controller
#     against a real kube-apiserver. `hack/check-image.sh --static` (in .ci/run) fails when this
#     runtime stage and the script drift apart: change both together (docs/image.md).
#
# BuildKit is required (cache mounts). The Rust build runs natively on the build platform; for
# arm64 build on an arm64 builder (kubectl follows TARGETARCH).

ARG RUST_VERSION=1.95
ARG KUBECTL_VERSION=v1.34.4
# The helm the tests render with (hack/test-services.sh), for the helm-template step.
ARG HELM_VERSION=v3.17.2

# ---------------------------------------------------------------------------------------- build
# rust:*-bookworm already has gcc and make, all aws-lc-sys 0.47 needs on x86_64-linux-gnu: it
# compiles AWS-LC with the cc crate ("Building with: CC") and ships pregenerated bindings, so
# neither cmake nor clang/bindgen is required here (FIPS builds and some other targets need them).
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what the build reads (.dockerignore is an allowlist too).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# A workspace member; its manifest must be present, though the operator build links none of it.
COPY crates ./crates
# Strip the symbol table too (release already drops debug info), without touching Cargo.toml.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --no-default-features --bin haul \
 && install -D -m 0755 target/release/haul /out/haul \
 && /out/haul --version

# -------------------------------------------------------------------------------------- kubectl
# For the kustomize-build step (`kubectl kustomize`). Verified against the published checksum;
# pass --build-arg KUBECTL_SHA256=<sha256> to pin it independently of dl.k8s.io.
FROM rust:${RUST_VERSION}-bookworm AS kubectl
ARG KUBECTL_VERSION
ARG KUBECTL_SHA256=""
ARG TARGETARCH=amd64
RUN set -eu; \
    base="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}"; \
    curl -fsSL --retry 3 -o /kubectl "$base/kubectl"; \
    sum="${KUBECTL_SHA256:-$(curl -fsSL --retry 3 "$base/kubectl.sha256")}"; \
    echo "$sum  /kubectl" | sha256sum -c -; \
    chmod 0755 /kubectl; \
    /kubectl version --client

# ----------------------------------------------------------------------------------------- helm
# For the helm-template step (`helm template`). Verified against the published checksum; pass
# --build-arg HELM_SHA256=<sha256 of the .tar.gz> to pin it independently of get.helm.sh.
FROM rust:${RUST_VERSION}-bookworm AS helm
ARG HELM_VERSION
ARG HELM_SHA256=""
ARG TARGETARCH=amd64
RUN set -eu; \
    tgz="helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
    curl -fsSL --retry 3 -o "/$tgz" "https://get.helm.sh/$tgz"; \
    sum="${HELM_SHA256:-$(curl -fsSL --retry 3 "https://get.helm.sh/$tgz.sha256sum" | cut -d' ' -f1)}"; \
    echo "$sum  /$tgz" | sha256sum -c -; \
    tar -xzf "/$tgz" -C / "linux-${TARGETARCH}/helm"; \
    install -m 0755 "/linux-${TARGETARCH}/helm" /helm; \
    /helm version --short

# -------------------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim AS runtime
ARG KUBECTL_VERSION
# git and openssh-client: the git layer (ssh-keygen also signs with SSH keys); gnupg: GPG-signed
# commits and tags; ca-certificates: TLS to registries, git hosts, AWS;
# tini: PID 1 that reaps orphaned git/ssh processes (haul kills timed-out git process groups).
# hack/build-image.sh installs the same list (PACKAGES) on the same suite.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git openssh-client gnupg ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && git --version \
 && groupadd --gid 65532 haul \
 && useradd --uid 65532 --gid 65532 --home-dir /home/haul --create-home --shell /usr/sbin/nologin haul \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/haul
COPY --from=kubectl /kubectl /usr/local/bin/kubectl
COPY --from=helm /helm /usr/local/bin/helm
COPY --from=build /out/haul /usr/local/bin/haul

# The chart mounts emptyDirs on /var/lib/haul and /tmp, so the root filesystem can be read-only.
ENV HAUL_WORK_DIR=/var/lib/haul \
    HOME=/home/haul \
    RUST_LOG=info
USER 65532:65532
WORKDIR /var/lib/haul
# /metrics, /healthz, /readyz (HAUL_METRICS_ADDR; the chart sets it from metrics.port).
EXPOSE 8080

LABEL org.opencontainers.image.title="haul" \
      org.opencontainers.image.description="Promotes releases through environments the GitOps way (Kargo's kargo.akuity.io/v1alpha1 API)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/haul"]
CMD ["controller"]
