#!/bin/sh
# Benchmark: the same work over one base tree on a plain directory (a copy), kernel overlayfs,
# fuse-overlayfs and an agentfs overlay session, in one run.
#
#   sh tests/bench/overlay.sh        (as root; installs fuse-overlayfs with apt if missing)
#
# The last column is a second agentfs session mounted with --passthrough (OPEN answered so
# that large base files are read by the kernel), to show what declining OPEN buys.
# Steps: stat the base tree, read it all (cold caches), re-stat warm, append to 10% of the
# files, delete 10%, create 2,000 files, list all. Then the session database's size after
# reading everything, which must hold no file data.
set -eu
cd "$(dirname "$0")/../.."
cargo build --release --locked -q
bin="$PWD/target/release/agentfs"
command -v fuse-overlayfs >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs >/dev/null
}
work="$(mktemp -d "${TMPDIR:-/tmp}/agentfs-obench.XXXXXX")"
export AGENTFS_HOME="$work/home"
cleanup() {
    for m in "$work/ovl" "$work/fovl" "$work/agentfs" "$work/agentfs_pt"; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "preparing the base tree (cargo vendor)..." >&2
cargo vendor --locked --versioned-dirs "$work/base/vendor" >/dev/null 2>&1
nfiles=$(find "$work/base" -type f | wc -l)
mkdir -p "$work/plain" "$work/ovl" "$work/fovl" "$work/agentfs" "$work/agentfs_pt" \
    "$work/ovl-upper" "$work/ovl-work" "$work/fovl-upper" "$work/fovl-work"
cp -a "$work/base/." "$work/plain/"
mount -t overlay overlay -o "lowerdir=$work/base,upperdir=$work/ovl-upper,workdir=$work/ovl-work" "$work/ovl"
fuse-overlayfs -o "lowerdir=$work/base,upperdir=$work/fovl-upper,workdir=$work/fovl-work" "$work/fovl"
"$bin" init bench --base "$work/base" >/dev/null 2>&1
"$bin" mount bench "$work/agentfs" 2>/dev/null
# The same with --passthrough (OPEN answered, base files of 256 KiB or more read by the kernel).
"$bin" init bench-pt --base "$work/base" >/dev/null 2>&1
"$bin" mount bench-pt "$work/agentfs_pt" --passthrough 2>/dev/null

now() { date +%s%N; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
sides="plain ovl fovl agentfs agentfs_pt"
results=""
# step NAME COMMAND: runs COMMAND with $D set to each side's mount point, in turn.
step() {
    name="$1"; shift
    line="$name"
    for side in $sides; do
        D="$work/$side"
        sync
        case "$name" in read*|stat\ cold*) drop_caches;; esac
        t0=$(now); eval "$@"; t1=$(now)
        line="$line|$(( (t1 - t0) / 1000000 ))"
    done
    results="$results$line
"
}

step "stat cold ($nfiles files)" 'find "$D/vendor" -printf "%s %m %T@\n" > /dev/null'
step "read all (cold)" 'find "$D/vendor" -type f -exec cat {} + > /dev/null'
step "stat warm" 'find "$D/vendor" -printf "%s %m %T@\n" > /dev/null'
db_after_read=$(du -sk "$AGENTFS_HOME" | cut -f1)
data_rows=$("$bin" sql bench --mode list "SELECT count(*) FROM fs_data" | tail -n 1)
step "append to 10% of files" 'find "$D/vendor" -type f | awk "NR % 10 == 1" | while IFS= read -r f; do echo "// x" >> "$f"; done'
step "delete 10% of files" 'find "$D/vendor" -type f | awk "NR % 10 == 5" | xargs rm -f'
step "create 2000 files" 'mkdir -p "$D/new" && i=0; while [ $i -lt 2000 ]; do echo "$i" > "$D/new/f$i"; i=$((i + 1)); done'
step "list all" 'find "$D" > /dev/null'

printf '%-28s %10s %10s %14s %10s %12s %12s %16s\n' step plain overlayfs fuse-overlayfs agentfs "vs plain" "vs fuse-ovl" "--passthrough"
printf '%s' "$results" | while IFS='|' read -r name p o f a t; do
    r1=$(awk -v a="$a" -v b="$p" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
    r2=$(awk -v a="$a" -v b="$f" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    printf '%-28s %8sms %8sms %12sms %8sms %12s %12s %14sms\n' "$name" "$p" "$o" "$f" "$a" "$r1" "$r2" "$t"
done
echo "agentfs session after reading everything: ${db_after_read} KiB on disk, $data_rows fs_data rows"
