#!/usr/bin/env bash
# Lists, then removes, anything a test sandbox (mgtest*), the demo (mgdemo*) or a benchmark
# (mgbench*) left on this machine: pins under /sys/fs/bpf, network namespaces, cgroups.
# Exit 1 when something was found.
set -uo pipefail
found=0
# A name carries the pid of the process that made it (mgtest-LABEL-PID-N, mgbench-PID-...): one
# whose process is still alive belongs to a run in progress, not a leftover.
alive() {
  local pid
  pid=$(basename "$1" | grep -oE -- '-[0-9]+(-|$)' | head -1 | tr -d -)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
cg=$(awk '$9=="cgroup2"{print $5; exit}' /proc/self/mountinfo)
for prefix in mgtest mgdemo mgbench; do
for pin in /sys/fs/bpf/${prefix}*; do
  [ -e "$pin" ] || continue
  alive "$pin" && continue
  echo "LEFTOVER bpffs pin: $pin" >&2; found=1
  for link in "$pin"/links/*; do [ -e "$link" ] && bpftool link detach pinned "$link" 2>/dev/null; done
  rm -rf "$pin"
done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}" || true); do
  alive "$ns" && continue
  echo "LEFTOVER network namespace: $ns" >&2; found=1
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9
  ip netns del "$ns"
done
if [ -n "$cg" ]; then
  for dir in $(find "$cg" -maxdepth 1 -name "${prefix}*" -type d 2>/dev/null); do
    alive "$dir" && continue
    echo "LEFTOVER cgroup: $dir ($(bpftool cgroup show "$dir" 2>/dev/null | tail -n +2 | wc -l) programs attached)" >&2; found=1
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
fi
done
[ "$found" -eq 0 ] && echo "check-leftovers: no test, demo or bench cgroup, netns or pin left behind"
exit "$found"
