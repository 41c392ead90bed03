#!/bin/sh
# Benchmark: the work whose cost is requests to the daemon, on an agentfs mount against a
# plain directory in one run, with the FUSE requests each step sent (counted through the
# fuse_request_send tracepoint) and the round trip of a trivial request beside
# fuse-overlayfs's.
#
#   sh tests/bench/roundtrips.sh        (as root; needs /dev/fuse and tracefs)
#
# The corpus is `cargo vendor` of this project's dependencies (thousands of real source
# files), packed once into a tar. Rows: untar on a session mount; `ls -lR` of an overlay
# over the corpus, warm and once the cache lifetime (--cache-ttl, 10 s) has lapsed; rm -rf;
# 256 MiB written and fsynced; statvfs (always a request) per call.
set -eu
cd "$(dirname "$0")/../.."
cargo build --release --locked -q
bin="$PWD/target/release/agentfs"
command -v fuse-overlayfs >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs >/dev/null
}
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
work="$(mktemp -d "${TMPDIR:-/tmp}/agentfs-rt.XXXXXX")"
export AGENTFS_HOME="$work/home"
trace="/sys/kernel/tracing/instances/agentfs-bench-$$"
cleanup() {
    [ -d "$trace" ] && { echo 0 > "$trace/events/fuse/fuse_request_send/enable"; rmdir "$trace"; }
    for m in "$work/mnt" "$work/ovl" "$work/fovl"; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "preparing the corpus (cargo vendor)..." >&2
cargo vendor --locked --versioned-dirs "$work/corpus/vendor" >/dev/null 2>&1
tar -C "$work/corpus" -cf "$work/src.tar" vendor
nfiles=$(tar -tf "$work/src.tar" | grep -vc '/$')
mkdir -p "$work/mnt" "$work/plain" "$work/ovl" "$work/fovl" "$work/fu" "$work/fw"
"$bin" init plain >/dev/null 2>&1
"$bin" mount plain "$work/mnt" 2>/dev/null
"$bin" init ovl --base "$work/corpus" >/dev/null 2>&1
"$bin" mount ovl "$work/ovl" 2>/dev/null
fuse-overlayfs -o "lowerdir=$work/corpus,upperdir=$work/fu,workdir=$work/fw" "$work/fovl" 2>/dev/null

now() { date +%s%N; }
# Counting requests: one tracing instance of our own, filtered by the mount's connection.
mkdir "$trace"
echo 16384 > "$trace/buffer_size_kb"
count_on() { echo "connection == $(stat -c %d "$1")" > "$trace/events/fuse/fuse_request_send/filter"; : > "$trace/trace"; echo 1 > "$trace/events/fuse/fuse_request_send/enable"; }
counted() {
    echo 0 > "$trace/events/fuse/fuse_request_send/enable"
    grep -o '(FUSE_[A-Z_]*)' "$trace/trace" | sed 's/(FUSE_//; s/)//' | sort | uniq -c | sort -rn |
        awk '{ n += $1; s = s sprintf(" %s %d", $2, $1) } END { printf "%d:%s", n, s }'
}

results=""
# row NAME PLAIN_DIR MOUNT COMMAND: times COMMAND with $D set to each side (plain first),
# counting the mount side's requests.
row() {
    name="$1"; plain="$2"; mount="$3"; shift 3
    D="$plain"; sync; t0=$(now); eval "$@"; t1=$(now)
    D="$mount"; sync; count_on "$mount"; t2=$(now); eval "$@"; t3=$(now); reqs=$(counted)
    results="$results$name|$(( (t3 - t2) / 1000000 ))|$(( (t1 - t0) / 1000000 ))|$reqs
"
}

row "untar ($nfiles files)" "$work/plain" "$work/mnt" 'tar -C "$D" -xf "$work/src.tar"'
ls -lR "$work/ovl" > /dev/null
row "ls -lR overlay, warm" "$work/corpus" "$work/ovl" 'ls -lR "$D" > /dev/null'
sleep 11
row "ls -lR overlay, cache lapsed" "$work/corpus" "$work/ovl" 'ls -lR "$D" > /dev/null'
row "rm -rf the untarred tree" "$work/plain" "$work/mnt" 'rm -rf "$D/vendor"'
row "write 256 MiB + fsync" "$work/plain" "$work/mnt" 'dd if=/dev/zero of="$D/big" bs=1M count=256 conv=fsync status=none'

printf '%-32s %9s %9s %7s  %s\n' step agentfs plain ratio "requests on the mount"
printf '%s' "$results" | while IFS='|' read -r name m p reqs; do
    ratio=$(awk -v m="$m" -v p="$p" 'BEGIN { if (p > 0) printf "%.1fx", m / p; else print "-" }')
    printf '%-32s %7sms %7sms %7s  %s\n' "$name" "$m" "$p" "$ratio" "$reqs"
done
perfile=$(printf '%s' "$results" | awk -F'|' -v n="$nfiles" 'NR == 1 { split($4, a, ":"); printf "%.1f", a[1] / n }')
echo "untar: $perfile requests per file"

# The round trip of a request the daemon answers from memory: statvfs is never cached.
rt() {
    python3 - "$1" <<'EOF'
import os, sys, time
p, n = sys.argv[1], 3000
for _ in range(300):
    os.statvfs(p)
t = time.perf_counter()
for _ in range(n):
    os.statvfs(p)
print(f"{(time.perf_counter() - t) / n * 1e6:.1f}")
EOF
}
echo "statvfs round trip (us): plain dir $(rt "$work/plain"), agentfs $(rt "$work/mnt"), agentfs overlay $(rt "$work/ovl"), fuse-overlayfs $(rt "$work/fovl")"
