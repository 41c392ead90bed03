#!/bin/sh
# POSIX conformance: runs pjdfstest (from ../shared/tools/pjdfstest, or $PJDFSTEST_KIT) on a
# fresh agentfs mount and fails if fewer assertions pass than the floor in
# tests/pjdfstest-floor, or if any fail beyond the allowance written there.
#
#   sh tests/pjdfstest.sh            a plain session   (keys passed / failed)
#   sh tests/pjdfstest.sh overlay    a session over a base directory (overlay_passed / ...)
#   sh tests/pjdfstest.sh run        inside `agentfs run` as root, on the copy-on-write view
#                                    of a base directory (run_passed / ...): the sandbox's
#                                    capabilities must be enough for real tools
#
# As root; needs /dev/fuse.
set -eu
cd "$(dirname "$0")/.."
repo="$PWD"
kit="${PJDFSTEST_KIT:-$repo/../shared/tools/pjdfstest}"
if [ ! -x "$kit/run" ]; then
    echo "pjdfstest.sh: no pjdfstest kit at $kit; set PJDFSTEST_KIT to its directory" >&2
    exit 2
fi
mode="${1:-plain}"
case "$mode" in
    plain) prefix="" ;;
    overlay) prefix="overlay_" ;;
    run) prefix="run_" ;;
    *) echo "pjdfstest.sh: unknown mode $mode; give plain, overlay or run" >&2; exit 2 ;;
esac
floor_passed=$(awk -v k="${prefix}passed" '$1 == k { print $2 }' tests/pjdfstest-floor)
max_failed=$(awk -v k="${prefix}failed" '$1 == k { print $2 }' tests/pjdfstest-floor)
bin="$repo/target/release/agentfs"
[ -x "$bin" ] || cargo build --release --locked -q
work="$(mktemp -d "${TMPDIR:-/tmp}/agentfs-pjdfstest.XXXXXX")"
export AGENTFS_HOME="$work/home"
mkdir -p "$work/mnt"
cleanup() {
    "$bin" umount --lazy "$work/mnt" 2>/dev/null || true
    # The shared mount of `agentfs run` goes once its last runner has left; do not race it.
    "$bin" umount --lazy "$AGENTFS_HOME/pjdfstest.db.run/mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
if [ "$mode" != plain ]; then
    # A base with some content, so the merged view has both layers.
    mkdir -p "$work/base/dir"
    echo base > "$work/base/file"
    echo nested > "$work/base/dir/nested"
    "$bin" init pjdfstest --base "$work/base" >/dev/null 2>&1
else
    "$bin" init pjdfstest >/dev/null 2>&1
fi
if [ "$mode" = run ]; then
    # Built outside first: inside, only the base and /tmp are writable.
    "$kit/build" >/dev/null
    (cd "$work/base" && PJDFSTEST_JOBS="${PJDFSTEST_JOBS:-2}" \
        "$bin" run -q --session pjdfstest -- "$kit/run" "$work/base") > "$work/out" 2>&1 || true
else
    "$bin" mount pjdfstest "$work/mnt"
    PJDFSTEST_JOBS="${PJDFSTEST_JOBS:-2}" "$kit/run" "$work/mnt" > "$work/out" 2>&1 || true
fi
tail -n 25 "$work/out"
summary=$(grep '^pjdfstest: [0-9]* passed, [0-9]* failed' "$work/out" | tail -n 1)
[ -n "$summary" ] || { echo "pjdfstest.sh: the suite printed no summary" >&2; exit 1; }
passed=$(echo "$summary" | awk '{ print $2 }')
failed=$(echo "$summary" | awk '{ print $4 }')
echo "pjdfstest.sh ($mode): $passed passed (floor $floor_passed), $failed failed (allowed $max_failed)"
if [ "$passed" -lt "$floor_passed" ] || [ "$failed" -gt "$max_failed" ]; then
    echo "pjdfstest.sh: conformance fell below the floor in tests/pjdfstest-floor" >&2
    exit 1
fi
