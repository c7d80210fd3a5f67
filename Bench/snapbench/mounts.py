"""Every mount the bench makes, recorded and undone at exit."""
import os
import shlex
import subprocess
import time

from .common import log, sh


class Mounts:
    def __init__(self):
        self.points = []      # mountpoints, in mount order
        self.daemons = {}     # mountpoint -> Popen of a foreground daemon we started

    def mount(self, mnt, argv, foreground=False, log_path=None):
        os.makedirs(mnt, exist_ok=True)
        if foreground:
            out = open(log_path or os.devnull, "w")
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.daemons[mnt] = p
            self.points.append(mnt)
            deadline = time.time() + 60
            while not os.path.ismount(mnt):
                if p.poll() is not None:
                    tail = open(log_path).read()[-2000:] if log_path else ""
                    raise RuntimeError(f"{argv[0]} exited ({p.returncode}) before mounting {mnt}\n{tail}")
                if time.time() > deadline:
                    raise RuntimeError(f"{mnt} not mounted after 60 s")
                time.sleep(0.05)
        else:
            sh(" ".join(shlex.quote(a) for a in argv))
            self.points.append(mnt)
            if not os.path.ismount(mnt):
                raise RuntimeError(f"{' '.join(argv)} did not mount {mnt}")

    def unmount(self, mnt):
        if mnt not in self.points:
            return
        for _ in range(50):
            if not os.path.ismount(mnt):
                break
            if subprocess.run(["fusermount3", "-u", mnt], capture_output=True).returncode == 0:
                break
            if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:  # not FUSE (a loop mount)
                break
            time.sleep(0.2)
        else:
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
        p = self.daemons.pop(mnt, None)
        if p is not None:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.points.remove(mnt)

    def unmount_all(self):
        for mnt in list(reversed(self.points)):
            try:
                self.unmount(mnt)
            except Exception as e:  # keep going: every mount must go
                log(f"unmount {mnt}: {e}")

