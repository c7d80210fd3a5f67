"""Processes, timing, caches and scratch files: the plumbing every section uses."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

from .config import MIB, WARM_READS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# SNAPFS_BIN: a release binary built elsewhere (another scratch path); else the one this checkout builds.
SNAPFS = os.environ.get("SNAPFS_BIN") or os.path.join(REPO, ".build", "release", "snapfs")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True, quiet=True, env=None):
    """Runs a shell command; returns its stdout."""
    r = subprocess.run(cmd, shell=True, executable="/bin/bash", capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout


class TimedOut(Exception):
    pass


def timed(cmd, env=None, timeout=None):
    """Wall-clock seconds of one shell command (which must succeed); TimedOut after `timeout` seconds (its process
    group is killed)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, executable="/bin/bash", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise TimedOut(cmd)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"timed command failed ({p.returncode}): {cmd}\n{err[-2000:]}")
    return t


def timed_cpu(argv):
    """Wall-clock seconds and CPU seconds (user + system, the process and what it waited for) of one command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    t = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError(f"timed command failed ({p.returncode}): {' '.join(argv)}\n{err[-2000:]}")
    return t, ru.ru_utime + ru.ru_stime


def task_cpu(pid):
    """CPU seconds used so far by every thread of a process (schedstat, nanoseconds)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def drop_caches(level=3):
    """3: page cache, dentries and inodes; 2: dentries and inodes only (FUSE file systems get FORGETs for them)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write(f"{level}\n")


def refill_round(order, read):
    """One round of a warm sequential read: drop the page cache, fill each system in `order` (one read that fills,
    one that settles the pages on the active list), then WARM_READS reads interleaved over them, so a minute in which
    this shared host's memory is slower costs every system a read. `read(name)` returns seconds, or None once that
    system has been stopped; returns each system's timed reads."""
    drop_caches()
    for n in order:
        read(n) and read(n)
    got = {n: [] for n in order}
    for _ in range(WARM_READS):
        for n in order:
            t = read(n)
            if t is not None:
                got[n].append(t)
    return got


# ---------------------------------------------------------------------------------------------------------------
# Deterministic data: AES-128-CTR keystream of a seed (openssl), so every run writes the same bytes, fast.

class Stream:
    def __init__(self, seed):
        key = hashlib.sha256(f"snapfs-bench-{seed}".encode()).hexdigest()[:32]
        self.p = subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-K", key, "-iv", "0" * 32, "-nosalt"],
                                  stdin=open("/dev/zero", "rb"),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.p.stdout.read(min(n - len(out), 4 * MIB))
            if not chunk:
                raise RuntimeError("openssl keystream ended")
            out += chunk
        return bytes(out)

    def close(self):
        self.p.kill()
        self.p.wait()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def rm(path):
    if os.path.isdir(path) and not os.path.islink(path):
        # Never descend into something still mounted.
        for dirpath, dirnames, _ in os.walk(path):
            for d in list(dirnames):
                if os.path.ismount(os.path.join(dirpath, d)):
                    raise RuntimeError(f"refusing to remove {path}: {os.path.join(dirpath, d)} is mounted")
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)

