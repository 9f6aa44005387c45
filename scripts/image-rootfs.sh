#!/bin/sh
# Assembles the runtime image's root filesystem under $1 (the Dockerfile's rootfs stage runs it in
# a Debian bookworm image that has node, libbpf1, iproute2 and binutils installed, and the agent
# already copied to $1/opt/meshgate). What goes in: node (stripped of its symbol table), the
# shared libraries it, koffi and libbpf load (ldd's closure, libbpf.so.1 included: koffi dlopens
# it), ip (`meshgate demo` uses `ip netns`), mount (the preflight mounts bpffs when the pin dir
# has none), sh, env (the entry point's #!/usr/bin/env), sleep (deploy/uninstall's "done"
# container). Nothing else of Debian: no package manager, no perl, no docs. The Debian packages
# these files come from are listed in /usr/share/meshgate/packages.txt, with their versions.
set -eu
R=$1
ARCH_LIB=$(dirname "$(ldd /bin/sh | awk '$1 ~ /^libc\.so/ {print $3}')")

mkdir -p "$R/usr/bin" "$R/usr/sbin" "$R/usr/local/bin" "$R/usr/share/meshgate" "$R/etc" \
  "$R/proc" "$R/sys" "$R/dev" "$R/run" "$R/root" "$R/var"
mkdir -p "$R/tmp" && chmod 1777 "$R/tmp"
ln -s /run "$R/var/run"
# Debian's merged /usr: /bin, /sbin, /lib* are links into /usr, and ldd names paths through them.
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d" && mkdir -p "$R$(readlink -f "/$d")"; fi
done
mkdir -p "$R$ARCH_LIB"

SOURCES=$(mktemp)
copy() { # copy FILE [DEST]: the file (symlinks followed) to the same path (or DEST) under $R
  echo "$1" >>"$SOURCES"
  dest=$R${2:-$1}
  mkdir -p "$(dirname "$dest")"
  cp -L "$1" "$dest"
}
libs_of() { ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; }

strip --strip-all -o "$R/usr/local/bin/node" /usr/local/bin/node
libbpf=$(ldconfig -p | awk '$1 == "libbpf.so.1" {print $NF; exit}')
koffi=$(find "$R/opt/meshgate/node_modules/koffi/build" -name '*.node' | head -1)
binaries="/bin/sh /usr/bin/env /usr/bin/sleep /usr/bin/mount $(command -v ip)"
for b in $binaries; do copy "$b"; done
for lib in $(for f in /usr/local/bin/node "$libbpf" "$koffi" $binaries; do libs_of "$f"; done | sort -u) "$libbpf"; do
  copy "$lib"
done
[ -d /usr/share/iproute2 ] && cp -a /usr/share/iproute2 "$R/usr/share/"

cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$R/etc/nsswitch.conf"

# Where each file came from, for scanners and for the next engineer. dpkg knows some files by their
# path before the /usr merge, so both spellings are asked.
owner() {
  real=$(readlink -f "$1")
  for p in "$real" "${real#/usr}" "$1" "${1#/usr}"; do dpkg -S "$p" 2>/dev/null && return; done
  echo "unknown: $1" >&2
}
sort -u "$SOURCES" | while read -r f; do owner "$f"; done | cut -d: -f1 | tr ',' '\n' | sed 's/ //g' | sort -u \
  | while read -r pkg; do dpkg-query -W -f='${Package} ${Version}\n' "$pkg"; done >"$R/usr/share/meshgate/packages.txt"
echo "node $(/usr/local/bin/node --version) (the base image's /usr/local/bin/node)" >>"$R/usr/share/meshgate/packages.txt"
rm -f "$SOURCES"
