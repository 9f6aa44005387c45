# meshgate node agent image.
#
#   docker build -t meshgate:dev .
#   docker run --rm meshgate:dev --help
#
# Four stages: `build` compiles the BPF objects with clang (and bpftool gen object), generates the
# ABI from their BTF and builds the TypeScript; `deps` installs the production npm dependencies
# only; `rootfs` assembles the runtime's files; `runtime` is those files on an empty image: node,
# libbpf and the few binaries listed there, and those two outputs, nothing else.
#
# BASE_IMAGE is any Debian bookworm image with Node.js 20 at /usr/local/bin/node (the official
# node:20-bookworm-slim by default). BUILD_IMAGE defaults to it. Both stages install their Debian
# packages with apt, so a mirror only needs to serve bookworm.
ARG BASE_IMAGE=node:20-bookworm-slim
ARG BUILD_IMAGE=${BASE_IMAGE}

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev bpftool make gcc libc6-dev linux-libc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY Makefile tsconfig.json ./
COPY bpf/ bpf/
COPY scripts/gen-abi.mjs scripts/
COPY native/ native/
COPY src/ src/
COPY test/helpers/sockprobe.c test/helpers/probeplace.h test/helpers/
# Only the agent's own sources are copied, so tsc compiles native/ and src/ (tests are not in the image).
# sockprobe is the socket probe `meshgate demo` drives.
RUN make --no-print-directory bpf abi ts build/sockprobe

FROM ${BASE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# koffi ships prebuilt binaries for every platform: only this one's are kept. Type declarations and
# source maps of dependencies are not used at run time (about 40 MB, mostly @kubernetes/client-node).
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete \
 && keep="linux_$(node -p 'process.arch')" \
 && find node_modules/koffi/build/koffi -mindepth 1 -maxdepth 1 -type d ! -name "$keep" -exec rm -rf {} + \
 && test -d "node_modules/koffi/build/koffi/$keep"

# The runtime's root filesystem, assembled from the base by scripts/image-rootfs.sh: node (stripped),
# the shared libraries it, koffi and libbpf load (libbpf1), ip (iproute2: `ip netns` for `meshgate
# demo`), mount, sh, env and sleep. No package manager, no perl, no npm: about 100 MB less than the
# base, whose Debian is needed only to build. /usr/share/meshgate/packages.txt lists the Debian
# packages the files come from.
FROM ${BASE_IMAGE} AS rootfs
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libbpf1 iproute2 binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /rootfs/opt/meshgate
COPY package.json ./
COPY bin/ bin/
COPY --from=deps /src/node_modules/ node_modules/
COPY --from=build /src/dist/native/ dist/native/
COPY --from=build /src/dist/src/ dist/src/
# The agent's BPF objects (the datapath in its two variants and their probe; the persisted last good
# configuration) and the demo's probe.
COPY --from=build /src/build/meshgate.bpf.o /src/build/meshgate-compat.bpf.o /src/build/kernctx_probe.bpf.o \
     /src/build/laststate.bpf.o /src/build/sockprobe build/
COPY scripts/image-rootfs.sh /usr/local/lib/
RUN sh /usr/local/lib/image-rootfs.sh /rootfs \
 && ln -s /opt/meshgate/bin/meshgate.js /rootfs/usr/local/bin/meshgate \
 && chroot /rootfs /usr/local/bin/meshgate --help >/dev/null

FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_ENV=production
WORKDIR /opt/meshgate
# The agent runs as uid 0 with every capability dropped except the few the DaemonSet adds
# (deploy/daemonset.yaml). A non-root uid would not work: Kubernetes puts added capabilities
# into the bounding and permitted sets only, so a non-root process would have none effective
# (no ambient capabilities), and file capabilities on node would hand them to every node script.
USER 0:0
ENTRYPOINT ["meshgate"]
CMD ["agent"]
