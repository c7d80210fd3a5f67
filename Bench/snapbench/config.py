"""What every section shares: sizes per mode, the peers, the packages the bench installs."""

MIB = 1 << 20
GIB = 1 << 30

APT_PACKAGES = ["fuse3", "fuse-overlayfs", "squashfuse", "squashfs-tools", "bindfs", "mergerfs", "rsync", "restic", "openssl"]

# Same shapes in both modes; quick divides the sizes.
MODES = {
    "default": dict(big=GIB, small_files=20_000, small_size=4096, tree_entries=100_000, root_snapshots=10_000,
                    state_files=10_000, state_bytes=GIB, changes=[0.001, 0.01, 0.10], store_sizes=[10, 100, 1000],
                    runs=3, op_runs=15, trigger_calls=20, timeout=20, warm_timeout=5, seq_cold_runs=3,
                    memory_entries=200_000, memory_snapshots=4, scale_entries=1_000_000, scale_timeout=180,
                    cli_files=1_000_000),
    "quick": dict(big=128 * MIB, small_files=2_000, small_size=4096, tree_entries=10_000, root_snapshots=1_000,
                  state_files=1_000, state_bytes=64 * MIB, changes=[0.001, 0.01, 0.10], store_sizes=[10, 100, 1000],
                  runs=3, op_runs=7, trigger_calls=10, timeout=10, warm_timeout=5, seq_cold_runs=3,
                  memory_entries=20_000, memory_snapshots=4, scale_entries=100_000, scale_timeout=60,
                  cli_files=100_000),
}

NOTES_MARKER = "<!-- Analysis below this line is written by hand and kept by Scripts/bench. -->"

PEERS = ["fuse-overlayfs", "squashfuse", "bindfs", "mergerfs"]
# Peers that are not C FUSE file systems: shown beside them, not part of the read path's target.
OTHER_PEERS = ["restic mount"]
ALL_PEERS = PEERS + OTHER_PEERS
# Timed reads of the warm 1 GiB file per refill round, interleaved over the systems: the first read after the settling
# ones is often 30-80% slower for every system (as if the pages were still settling), so one read per round let that
# decide the row; the round's median of three does not.
WARM_READS = 3

