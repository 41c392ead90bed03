#!/bin/sh
# Benchmark: real work inside `agentfs run` against the same work on the plain directory, in
# one run over two identical copies of one project. Each step is timed inside the command (so
# the sandbox start is not counted; it is measured on its own as "start"), and printed with
# the ratio agentfs / plain. Usage: sh tests/bench/run.sh [FILES] (generated files, default 5000)
set -eu
cd "$(dirname "$0")/../.."
repo="$PWD"
files="${1:-5000}"
cargo build --release --locked -q
af="$repo/target/release/agentfs"
work="$(mktemp -d /var/tmp/agentfs-bench-run.XXXXXX)"
trap 'rm -rf "$work"' EXIT
export AGENTFS_HOME="$work/home"

# The project: this repository's sources plus $files generated ones and a 50 MiB file, in git.
make_project() {
    dir="$1"
    git clone -q --no-local "$repo" "$dir"
    (
        cd "$dir"
        mkdir -p gen c
        i=0
        while [ $i -lt "$files" ]; do
            d="gen/d$((i / 100))"
            [ -d "$d" ] || mkdir -p "$d"
            printf 'line one %s\nneedle %s\nline three\n' "$i" "$i" > "$d/f$i.txt"
            i=$((i + 1))
        done
        i=0
        while [ $i -lt 100 ]; do
            printf 'int f%s(int x) { return x * %s; }\n' "$i" "$i" > "c/f$i.c"
            i=$((i + 1))
        done
        printf 'int main(void) { return 0; }\n' > c/main.c
        printf 'OBJS := $(patsubst %%.c,%%.o,$(wildcard c/*.c))\nc/prog: $(OBJS)\n\tcc -o $@ $^\n%%.o: %%.c\n\tcc -O0 -c -o $@ $<\n' > Makefile
        mkdir -p tiny/src
        printf '[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n[workspace]\n' > tiny/Cargo.toml
        i=0
        : > tiny/src/main.rs
        while [ $i -lt 20 ]; do
            printf 'pub fn f%s(x: u64) -> u64 { x.wrapping_mul(%s) }\n' "$i" "$i" > "tiny/src/m$i.rs"
            printf 'mod m%s;\n' "$i" >> tiny/src/main.rs
            i=$((i + 1))
        done
        printf 'fn main() { println!("{}", m3::f3(2)); }\n' >> tiny/src/main.rs
        head -c 52428800 /dev/urandom > big.bin
        git add -A >/dev/null
        git -c user.name=b -c user.email=b@example.com commit -qm generated
        # Files older than the index: no racily-clean entries for git to re-check.
        find . -path ./.git -prune -o -type f -exec touch -d '1 hour ago' {} + 
        git status --porcelain >/dev/null
    )
    mkdir -p "$work/pkg"
}

# A package tree to unpack, like a node_modules install.
mkdir -p "$work/pkgsrc"
i=0
while [ $i -lt 3000 ]; do
    d="$work/pkgsrc/mod$((i / 50))/lib"
    [ -d "$d" ] || mkdir -p "$d"
    printf 'module.exports = %s;\n' "$i" > "$d/f$i.js"
    i=$((i + 1))
done
tar -cf "$work/pkg.tar" -C "$work/pkgsrc" .

# Each step prints "name nanoseconds".
steps='
t() { name=$1; shift; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "step $name failed" >&2; exit 1; }; e=$(date +%s%N); echo "$name $((e - s))"; }
t git_status_cold git status --porcelain
t git_status_warm git status --porcelain
t grep_r grep -rc needle gen
t read_all sh -c "cat gen/*/* > /dev/null"
t edit_4k_of_50M dd if=/dev/zero of=big.bin bs=4096 seek=6000 count=1 conv=notrunc
t git_commit sh -c "for i in 1 2 3 4 5 6 7 8 9; do echo x >> gen/d0/f\$i.txt; done; git add -A && git -c user.name=b -c user.email=b@e commit -qm edit"
t make_j2 make -j2 -s c/prog
t cargo_build sh -c "cd tiny && cargo build --offline -q"
t untar_3000 sh -c "mkdir -p node_modules && tar -xf $PKG -C node_modules"
t rm_rf_3000 rm -rf node_modules
'

make_project "$work/plain"
make_project "$work/session"
echo "plain directory..."
(cd "$work/plain" && PKG="$work/pkg.tar" sh -c "$steps") > "$work/plain.txt"
echo "inside agentfs run..."
(cd "$work/session" && "$af" run -q --session bench -- env PKG="$work/pkg.tar" sh -c "$steps") > "$work/agentfs.txt"
s=$(date +%s%N)
(cd "$work/session" && "$af" run -q --session bench -- true)
e=$(date +%s%N)
echo "start $((e - s))" >> "$work/agentfs.txt"
echo "start 0" >> "$work/plain.txt"

printf '%-16s %12s %12s %8s\n' step plain_ms agentfs_ms ratio
awk 'NR==FNR { plain[$1] = $2; order[++n] = $1; next } { mine[$1] = $2 }
     END { for (i = 1; i <= n; i++) { k = order[i]; p = plain[k] / 1e6; a = mine[k] / 1e6;
           r = (p > 0) ? sprintf("%.2fx", a / p) : "-";
           printf "%-16s %12.1f %12.1f %8s\n", k, p, a, r } }' "$work/plain.txt" "$work/agentfs.txt"
echo "session database: $(du -h "$AGENTFS_HOME/bench.db" | cut -f1)"
echo "host tree unchanged: $(cd "$work/session" && git status --porcelain | wc -l) changed paths on the host"
