"""What the kernel says about the machine: proactive reclaim, and how a file's page cache is laid out in folios."""
import ctypes
import mmap
import os
import struct


def proactive_reclaim():
    """A sentence on DAMON schemes that page out memory idle for a while, if any runs: on such a machine a cache that
    sat unused for that long is no longer warm, for every system alike."""
    base = "/sys/kernel/mm/damon/admin/kdamonds"
    found = []
    try:
        for k in sorted(x for x in os.listdir(base) if x.isdigit()):
            if open(f"{base}/{k}/state").read().strip() != "on":
                continue
            for cx in sorted(x for x in os.listdir(f"{base}/{k}/contexts") if x.isdigit()):
                ctx = f"{base}/{k}/contexts/{cx}"
                aggr_us = int(open(f"{ctx}/monitoring_attrs/intervals/aggr_us").read())
                for sc in sorted(x for x in os.listdir(f"{ctx}/schemes") if x.isdigit()):
                    if open(f"{ctx}/schemes/{sc}/action").read().strip() == "pageout":
                        age = int(open(f"{ctx}/schemes/{sc}/access_pattern/age/min").read()) * aggr_us / 1e6
                        found.append(f"{age:.0f} s")
    except (OSError, ValueError):
        pass
    if not found:
        return ""
    return (f"proactive reclaim: DAMON pages out memory it sees idle for {' or '.join(found)} or more, so a page cache "
            "left unused that long is cold again (for every system alike)")


def page_cache_folios(path):
    """(large folios, pages in them, single pages) of a file's page cache: the file is mapped and touched, and each
    page's physical frame is looked up in /proc/self/pagemap and its flags in /proc/kpageflags (root only)."""
    page = os.sysconf("SC_PAGE_SIZE")
    size = os.path.getsize(path)
    n = size // page
    with open(path, "rb") as f:
        # Private and writable only so ctypes can take its address; never written, so every page stays the cache's.
        m = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        anchor = ctypes.c_char.from_buffer(m)
        base = ctypes.addressof(anchor)
        del anchor
        for off in range(0, n * page, page):
            m[off]
        pm = os.open("/proc/self/pagemap", os.O_RDONLY)
        kf = os.open("/proc/kpageflags", os.O_RDONLY)
        try:
            entries = struct.unpack(f"<{n}Q", os.pread(pm, n * 8, base // page * 8))
            heads = tails = single = 0
            for e in entries:
                if not e >> 63:
                    continue
                flags, = struct.unpack("<Q", os.pread(kf, 8, (e & ((1 << 55) - 1)) * 8))
                if flags & (1 << 15):       # KPF_COMPOUND_HEAD
                    heads += 1
                elif flags & (1 << 16):     # KPF_COMPOUND_TAIL
                    tails += 1
                else:
                    single += 1
        finally:
            os.close(pm)
            os.close(kf)
        return heads, heads + tails, single
    finally:
        m.close()

