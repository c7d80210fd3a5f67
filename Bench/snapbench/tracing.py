"""Counts the requests FUSE daemons get, with the kernel's fuse_request_send tracepoint."""
import os
import subprocess

# Which daemons a warm run reaches at all: the kernel's fuse_request_send tracepoint (Linux 6.14 and later), counted in
# a trace instance of our own so the system's tracing is left as it was.

class FuseRequests:
    TRACING = "/sys/kernel/tracing"
    EVENT = "events/fuse/fuse_request_send"

    def __init__(self):
        self.dir = None
        self.why_not = None
        if not os.path.isdir(os.path.join(self.TRACING, "events")):
            subprocess.run(["mount", "-t", "tracefs", "nodev", self.TRACING], capture_output=True)
        if not os.path.exists(os.path.join(self.TRACING, self.EVENT)):
            self.why_not = "this kernel has no fuse_request_send tracepoint (Linux 6.14 or later has it)"
            return
        d = os.path.join(self.TRACING, "instances", "snapfs-bench")
        try:
            if not os.path.isdir(d):
                os.mkdir(d)
            self._write(d, "tracing_on", "0")
            self._write(d, "buffer_size_kb", "16384")
            self._write(d, os.path.join(self.EVENT, "enable"), "1")
        except OSError as e:
            self.why_not = f"cannot set up a trace instance: {e}"
            return
        self.dir = d

    @staticmethod
    def _write(d, name, value):
        with open(os.path.join(d, name), "w") as f:
            f.write(value + "\n")

    def count(self, fn):
        """Runs fn and returns (requests sent to any FUSE daemon meanwhile, {opcode name: count}); the by-opcode
        counts are empty if the buffer overflowed."""
        self._write(self.dir, "trace", "")
        self._write(self.dir, "tracing_on", "1")
        try:
            fn()
        finally:
            self._write(self.dir, "tracing_on", "0")
        total = overrun = 0
        for cpu in os.listdir(os.path.join(self.dir, "per_cpu")):
            for line in open(os.path.join(self.dir, "per_cpu", cpu, "stats")):
                key, _, value = line.partition(":")
                if key == "entries":
                    total += int(value)
                elif key == "overrun":
                    overrun += int(value)
        ops = {}
        if not overrun:
            for line in open(os.path.join(self.dir, "trace")):
                if line.startswith("#"):
                    continue
                i = line.find("(FUSE_")
                if i >= 0:
                    op = line[i + 6:line.index(")", i)]
                    ops[op] = ops.get(op, 0) + 1
        return total + overrun, ops

    def close(self):
        if self.dir:
            try:
                self._write(self.dir, os.path.join(self.EVENT, "enable"), "0")
                os.rmdir(self.dir)
            except OSError:
                pass
            self.dir = None

