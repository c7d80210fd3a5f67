"""`restic mount` as a peer: what restic users run to browse their snapshots (Go, go-fuse)."""
import os
import time

from .common import sh

PASSWORD = "snapfs-bench"


def env(ctx, repo):
    """The environment that points restic at the repository `repo` under the scratch directory."""
    return dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_REPOSITORY=ctx.p(repo), RESTIC_CACHE_DIR=ctx.p(repo + "-cache"))


def backup_and_mount(ctx, paths, repo, mnt):
    """Backs `paths` up into a new repository and mounts it at `mnt` (recorded in ctx.mounts, so it is undone at exit).
    Returns (seconds the backup took, the directory in the mount that shows the filesystem root as it was backed up):
    restic keeps each path's absolute name, so `root + path` is that path's copy."""
    e = env(ctx, repo)
    sh("restic init --quiet", env=e)
    t0 = time.perf_counter()
    sh("restic backup --quiet " + " ".join(paths), env=e)
    took = time.perf_counter() - t0
    argv = ["env", f"RESTIC_PASSWORD={PASSWORD}", f"RESTIC_REPOSITORY={ctx.p(repo)}", f"RESTIC_CACHE_DIR={ctx.p(repo + '-cache')}",
            "restic", "mount", mnt]
    ctx.mounts.mount(mnt, argv, foreground=True, log_path=mnt.rstrip("/") + ".log")
    return took, os.path.join(mnt, "snapshots", "latest")
