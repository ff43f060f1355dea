#!/usr/bin/python3
"""Load for tests/bench/slices.sh: control-socket requests and `readlink` calls made as
many different uids, timed from inside the process that makes them.

Each uid gets its own forked child, which drops to that uid (setgroups, setgid, setuid)
before it connects or reads, so the daemon sees the uid in the socket's peer
credentials and in the FUSE request, as it would from a real slice. Forking once per
uid is far cheaper than exec'ing setpriv per call. Runs as root.

    slices_client.py pin      SOCKET FIRST_UID COUNT            # the scheme below, timed
    slices_client.py pinunpin SOCKET FIRST_UID COUNT            # pin (timed) then unpin
    slices_client.py readlink LINK FIRST_UID COUNT PER_UID EVEN ODD
    slices_client.py storkctl STORKCTL SOCKET COUNT             # the whole command, as root

The `storkctl` mode times `storkctl pin lib@1.0` as a whole (exec included), as root,
unpinning after each. The pin scheme: even uids pin lib@1.0, odd uids pin app (which brings lib 2.0 in as an
automatic pin). `readlink` checks that each uid's LINK names EVEN or ODD by the parity
of the uid (give the same value twice when nothing is pinned). Each command prints one
line of JSON: {"n": ..., "p50_us": ..., "p99_us": ..., "mean_us": ..., "max_us": ...}.
"""

import json
import os
import socket
import subprocess
import sys
import time


def call(sock_path, command):
    """One request on a fresh connection; returns the final reply, raises on an error."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock_path)
    s.sendall(json.dumps({"protocol": 1, "command": command}).encode() + b"\n")
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    lines = buf.splitlines()
    if not lines:
        raise RuntimeError("the daemon closed without answering")
    reply = json.loads(lines[-1])
    if "error" in reply:
        raise RuntimeError(reply["error"]["message"])
    return reply


def as_uid(uid, fn):
    """Runs fn() in a child that has become uid; returns what it returned (JSON)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            out = fn()
        except BaseException as e:  # report anything, never return into the parent's loop
            out = {"error": f"uid {uid}: {e}"}
            code = 1
        with os.fdopen(w, "wb") as f:
            f.write(json.dumps(out).encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    out = json.loads(data)
    if isinstance(out, dict) and "error" in out:
        sys.exit(f"slices_client.py: {out['error']}")
    return out


def pin_command(uid):
    if uid % 2 == 0:
        return {"pin": {"name": "lib", "version": "1.0", "node": False}}
    return {"pin": {"name": "app", "version": None, "node": False}}


def timed_ns(fn):
    t = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t


def summary(samples_ns):
    s = sorted(samples_ns)
    n = len(s)

    def pct(p):
        return s[min(n - 1, int(p / 100 * n))] / 1000

    return {
        "n": n,
        "p50_us": round(pct(50), 1),
        "p99_us": round(pct(99), 1),
        "mean_us": round(sum(s) / n / 1000, 1),
        "max_us": round(s[-1] / 1000, 1),
    }


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    mode = argv[1]
    samples = []
    if mode in ("pin", "pinunpin"):
        sock, first, count = argv[2], int(argv[3]), int(argv[4])
        for uid in range(first, first + count):

            def work(uid=uid):
                cmd = pin_command(uid)
                t = timed_ns(lambda: call(sock, cmd))
                if mode == "pinunpin":
                    name = cmd["pin"]["name"]
                    call(sock, {"unpin": {"name": name, "node": False}})
                return [t]

            samples += as_uid(uid, work)
    elif mode == "readlink":
        link, first, count, per = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
        even, odd = argv[6], argv[7]
        for uid in range(first, first + count):

            def work(uid=uid):
                want = even if uid % 2 == 0 else odd
                out = []
                for _ in range(per):
                    t = time.perf_counter_ns()
                    got = os.readlink(link)
                    out.append(time.perf_counter_ns() - t)
                    if got != want:
                        raise RuntimeError(f"{link} is {got!r}, expected {want!r}")
                return out

            samples += as_uid(uid, work)
    elif mode == "storkctl":
        storkctl, sock, count = argv[2], argv[3], int(argv[4])
        base = [storkctl, "--socket", sock]
        for _ in range(count):
            samples.append(
                timed_ns(lambda: subprocess.run(base + ["pin", "lib@1.0"], check=True, stderr=subprocess.DEVNULL))
            )
            subprocess.run(base + ["unpin", "lib"], check=True, stderr=subprocess.DEVNULL)
    else:
        sys.exit(f"slices_client.py: unknown mode {mode!r}\n{__doc__}")
    print(json.dumps(summary(samples)))


if __name__ == "__main__":
    main(sys.argv)
