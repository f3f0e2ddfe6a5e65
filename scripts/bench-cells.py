"""Driver of scripts/bench-cells (see there). Args: ADDR KEY DAEMON_PID ROOTFS ROUNDS PER."""
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

addr, key, daemon, rootfs, rounds, per = sys.argv[1:7]
daemon, rounds, per = int(daemon), int(rounds), int(per)
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=120)
HEADERS = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def call(method, path, body=None, expect=(200,)):
    conn.request(method, path, None if body is None else json.dumps(body), HEADERS)
    r = conn.getresponse()
    data = r.read()
    if r.status not in expect:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def timed(f):
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1000, out


BWRAP = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/",
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"]


def med(xs):
    return statistics.median(xs)


creates, execs, runs, bwraps = [], [], [], []
print(f"{rounds} rounds of {per} execs, {per} runs and {per} bwrap starts each, interleaved")
for rnd in range(1, rounds + 1):
    ms, cell = timed(lambda: call("POST", "/v1/cells", {"image": "busybox"}, (201,)))
    creates.append(ms)
    cid = cell["id"]
    e, r, b = [], [], []
    for _ in range(per):
        ms, out = timed(lambda: call("POST", f"/v1/cells/{cid}/exec", {"cmd": ["/bin/true"]}))
        assert out["result"]["verdict"] == "OK", out
        e.append(ms)
        ms, out = timed(lambda: call("POST", "/v1/runs",
                                     {"image": "busybox", "cmd": ["/bin/true"], "wait": True}))
        assert out["verdict"] == "OK", out
        r.append(ms)
        ms, _ = timed(lambda: subprocess.run(BWRAP, check=True))
        b.append(ms)
    call("DELETE", f"/v1/cells/{cid}")
    execs += e
    runs += r
    bwraps += b
    print(f"round {rnd}: create {creates[-1]:.1f} ms; median exec {med(e):.2f} ms, "
          f"run {med(r):.2f} ms, bwrap {med(b):.2f} ms; exec/run {med(e) / med(r):.2f}, "
          f"exec/bwrap {med(e) / med(b):.2f}")
print(f"all rounds: create median {med(creates):.1f} ms; exec {med(execs):.2f} ms, "
      f"run {med(runs):.2f} ms, bwrap {med(bwraps):.2f} ms; exec/run {med(execs) / med(runs):.2f}, "
      f"exec/bwrap {med(execs) / med(bwraps):.2f}, create/run {med(creates) / med(runs):.2f}")


def cells_of_daemon():
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "sandcell-cell" and ppid == daemon:
            found.add(int(pid))
    return found


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cgroup_charge(pid):
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            p = f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"
        elif ctrls == "" and os.path.exists(f"/sys/fs/cgroup{path}/memory.current"):
            p = f"/sys/fs/cgroup{path}/memory.current"
        else:
            continue
        try:
            with open(p) as f:
                return int(f.read())
        except OSError:
            return 0
    return 0


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


before = cells_of_daemon()
avail_before = mem_available_kib()
ids, create_ms = [], []
for _ in range(100):
    ms, cell = timed(lambda: call("POST", "/v1/cells", {"image": "busybox"}, (201,)))
    ids.append(cell["id"])
    create_ms.append(ms)
time.sleep(2)
new = cells_of_daemon() - before
avail_after = mem_available_kib()
pss = sum(pss_kib(p) for p in new) / 1024
charge = sum(cgroup_charge(p) for p in new) / (1 << 20)
print(f"100 idle cells ({len(new)} PID 1s found): create median {med(create_ms):.1f} ms, "
      f"p90 {sorted(create_ms)[89]:.1f} ms; PID 1s' PSS {pss:.1f} MiB in all "
      f"({pss * 1024 / max(len(new), 1):.0f} KiB each); cgroup charge {charge:.1f} MiB; "
      f"MemAvailable down {(avail_before - avail_after) / 1024:.1f} MiB (noisy: shared machine)")
for cid in ids:
    call("DELETE", f"/v1/cells/{cid}")
