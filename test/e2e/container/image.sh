#!/usr/bin/env bash
# Builds the meshgate image on this machine without pulling anything, and prints its name.
#
#   bash test/e2e/container/image.sh        # prints the image id on stdout, the rest on stderr
#
# 1. A base image: a Debian bookworm root filesystem from debootstrap, with the host's Node.js 20
#    at /usr/local/bin/node (and its npm, which the Dockerfile's build stages use and the runtime
#    stage deletes), the host's CA bundle and npm's cafile, imported with `docker import`.
# 2. `docker build` of the real Dockerfile with BASE_IMAGE set to it, on the host's network (the
#    engine runs without a bridge: see run.sh).
#
# Caches, so that a second run takes seconds: the base root filesystem as a tarball in
# $MESHGATE_E2E_CACHE (default /var/cache/meshgate-e2e), the base image (its tag is a hash of
# everything that goes into it), and the engine's build cache (the image is tagged
# meshgate-e2e:latest, so its layers are kept between runs).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CACHE=${MESHGATE_E2E_CACHE:-/var/cache/meshgate-e2e}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
IMAGE=meshgate-e2e:latest

say() { printf '[image] %s\n' "$*" >&2; }
fail() { printf '[image] FAIL: %s\n' "$*" >&2; exit 1; }

NODE_BIN=$(readlink -f "$(command -v node)")
NODE_VERSION=$("$NODE_BIN" --version)
case "$NODE_VERSION" in v20.*) ;; *) fail "the base needs Node.js 20: the host has $NODE_VERSION at $NODE_BIN" ;; esac
NPM_DIR=$(cd "$(dirname "$NODE_BIN")/../lib/node_modules/npm" 2>/dev/null && pwd) || fail "npm is not installed next to $NODE_BIN"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA_BUNDLE" ] || fail "no CA bundle at $CA_BUNDLE"

work=""
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT

build_base_tar() {
  work=$(mktemp -d "/var/tmp/mgtest-base-$$-XXXX")
  local rootfs=$work/rootfs
  say "debootstrap bookworm (minbase) from $MIRROR"
  # The .debs are kept, so a rebuild of the base (a new node, a new CA bundle) downloads nothing.
  mkdir -p "$CACHE/debs"
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  # As the official node images: node and npm under /usr/local; npm reads /usr/local/etc/npmrc.
  install -D -m 0755 "$NODE_BIN" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # The registries are reached only with the host's CA bundle.
  install -D -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  install -D -m 0644 /dev/stdin "$rootfs/usr/local/etc/npmrc" <<EOF
cafile=/etc/ssl/certs/ca-certificates.crt
update-notifier=false
EOF
  # What the official slim images leave out, too.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
  chroot "$rootfs" /usr/local/bin/node --version >/dev/null || fail "node does not run in the base"
  mkdir -p "$CACHE"
  tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$work"
  work=""
}

# The base's tag changes whenever one of its inputs does.
BASE_KEY=$( { sha256sum "$NODE_BIN" "$CA_BUNDLE"; declare -f build_base_tar; echo "$MIRROR $SECURITY_MIRROR"; cat "$NPM_DIR/package.json"; } | sha256sum | cut -c1-16)
BASE_IMAGE=meshgate-e2e-base:$BASE_KEY
BASE_TAR=$CACHE/base-$BASE_KEY.tar

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE (cached)"
else
  if [ -s "$BASE_TAR" ]; then say "base root filesystem $BASE_TAR (cached)"; else build_base_tar; fi
  say "docker import $BASE_TAR as $BASE_IMAGE"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
fi

say "docker build of $ROOT/Dockerfile with BASE_IMAGE=$BASE_IMAGE"
# The classic builder, which every engine has (BuildKit needs the buildx plugin with newer
# clients). Its layer cache is the parent chain of $IMAGE and the stages' images, kept between runs.
DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" "$ROOT" >&2 \
  || fail "docker build failed"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "image $IMAGE: $((size / 1000000)) MB ($size bytes; SPEC §5: at most 150 MB)"
docker image inspect -f '{{.Id}}' "$IMAGE"
