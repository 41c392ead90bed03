#!/bin/sh
# POSIX conformance: runs pjdfstest (from ../shared/tools/pjdfstest, or $PJDFSTEST_KIT) on a
# fresh agentfs mount and fails if fewer assertions pass than the floor in
# tests/pjdfstest-floor, or if any fail beyond the allowance written there.
#
#   sh tests/pjdfstest.sh          (as root; needs /dev/fuse)
set -eu
cd "$(dirname "$0")/.."
repo="$PWD"
kit="${PJDFSTEST_KIT:-$repo/../shared/tools/pjdfstest}"
if [ ! -x "$kit/run" ]; then
    echo "pjdfstest.sh: no pjdfstest kit at $kit; set PJDFSTEST_KIT to its directory" >&2
    exit 2
fi
floor_passed=$(awk '/^passed/ { print $2 }' tests/pjdfstest-floor)
max_failed=$(awk '/^failed/ { print $2 }' tests/pjdfstest-floor)
bin="$repo/target/release/agentfs"
[ -x "$bin" ] || cargo build --release --locked -q
work="$(mktemp -d "${TMPDIR:-/tmp}/agentfs-pjdfstest.XXXXXX")"
export AGENTFS_HOME="$work/home"
mkdir -p "$work/mnt"
cleanup() {
    "$bin" umount --lazy "$work/mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
"$bin" init pjdfstest >/dev/null 2>&1
"$bin" mount pjdfstest "$work/mnt"
PJDFSTEST_JOBS="${PJDFSTEST_JOBS:-2}" "$kit/run" "$work/mnt" > "$work/out" 2>&1 || true
tail -n 25 "$work/out"
summary=$(grep '^pjdfstest: [0-9]* passed, [0-9]* failed' "$work/out" | tail -n 1)
[ -n "$summary" ] || { echo "pjdfstest.sh: the suite printed no summary" >&2; exit 1; }
passed=$(echo "$summary" | awk '{ print $2 }')
failed=$(echo "$summary" | awk '{ print $4 }')
echo "pjdfstest.sh: $passed passed (floor $floor_passed), $failed failed (allowed $max_failed)"
if [ "$passed" -lt "$floor_passed" ] || [ "$failed" -gt "$max_failed" ]; then
    echo "pjdfstest.sh: conformance fell below the floor in tests/pjdfstest-floor" >&2
    exit 1
fi
