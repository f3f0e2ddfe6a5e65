#!/usr/bin/env bash
# Wall time of the 10-test C++ example suite: `sandcell grade --jobs 2` (compile once, every
# test in a fresh cell with cgroup limits and seccomp) against a shell loop doing the same
# compile + 10 runs with bubblewrap (namespaces only, no limits), in the same invocation,
# over the same cpp image rootfs.
#
#   SANDCELL=target/release/sandcell ROUNDS=5 examples/sum/bench-vs-bwrap.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SANDCELL=${SANDCELL:-sandcell}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2}

rootfs=$("$SANDCELL" image inspect cpp | python3 -c 'import json,sys; print(json.load(sys.stdin)["rootfs"])')
inputs=$(mktemp -d)
trap 'rm -rf "$inputs"' EXIT
# Every test's stdin and expected output as files (done once, outside the timings).
python3 - "$here" "$inputs" <<'PY'
import sys, tomllib, pathlib
here, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
suite = tomllib.loads((here / "suite.toml").read_text())
for i, t in enumerate(suite["tests"]):
    stdin = t.get("stdin") or (here / t["stdin_file"]).read_text()
    want = t.get("expected_stdout") or (here / t["expected_file"]).read_text()
    (out / f"{i:02}.in").write_text(stdin)
    (out / f"{i:02}.out").write_text(want)
PY

box() {  # bwrap over the image, $1 = work dir, $2 = ro|rw, rest = command
    local work=$1 mode=$2; shift 2
    local bind=--ro-bind; [ "$mode" = rw ] && bind=--bind
    bwrap --ro-bind "$rootfs" / $bind "$work" /work --chdir /work --dev /dev --proc /proc \
        --tmpfs /tmp --unshare-all --die-with-parent --new-session \
        -- "$@"
}

bwrap_loop() {
    local work; work=$(mktemp -d); chmod 755 "$work"
    cp "$here/solutions/correct.cpp" "$work/main.cpp"
    box "$work" rw g++ -O2 -std=c++17 -o main main.cpp
    local pass=0
    for input in "$inputs"/*.in; do
        got=$(box "$work" ro ./main < "$input")
        # tokens comparison, like the suite's default comparator
        if [ "$(echo $got)" = "$(echo $(cat "${input%.in}.out"))" ] \
            || awk -v a="$got" -v b="$(cat "${input%.in}.out")" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6) }'; then
            pass=$((pass + 1))
        fi
    done
    rm -rf "$work"
    echo "$pass"
}

ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "round  sandcell-grade(--jobs $JOBS)  sandcell-grade(--jobs 1)  bwrap-loop"
for round in $(seq 1 "$ROUNDS"); do
    t0=$(ms); "$SANDCELL" grade "$here/suite.toml" --jobs "$JOBS" --format json >/dev/null; t1=$(ms)
    "$SANDCELL" grade "$here/suite.toml" --jobs 1 --format json >/dev/null; t2=$(ms)
    passed=$(bwrap_loop); t3=$(ms)
    [ "$passed" = 10 ] || echo "bwrap loop passed only $passed/10" >&2
    printf '%5d  %24d ms  %21d ms  %7d ms\n' "$round" $((t1 - t0)) $((t2 - t1)) $((t3 - t2))
done
