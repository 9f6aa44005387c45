# The e2e test pods' image: test/helpers/sockprobe, the socket probe the kernel tests use.
# - as the stand-in sidecar (container "envoy"): `sockprobe listen` on 127.0.0.1:15001 answers
#   every connection with one JSON line that includes getsockopt(SOL_IP, SO_ORIGINAL_DST);
# - as the application: `sockprobe connect ... --read` prints the verdict (ok / EPERM) and that reply.
# Built from the repository root: docker build -f test/e2e/kind/probe.Dockerfile -t meshgate-e2e-probe:dev .
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev linux-libc-dev \
 && rm -rf /var/lib/apt/lists/*
COPY test/helpers/sockprobe.c /src/sockprobe.c
RUN cc -O2 -Wall -Werror -o /sockprobe /src/sockprobe.c

FROM ${BASE_IMAGE}
COPY --from=build /sockprobe /usr/local/bin/sockprobe
CMD ["sleep", "infinity"]
