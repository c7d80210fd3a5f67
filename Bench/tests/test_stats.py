"""The arithmetic behind every row: medians, ratios and their bounds, verdicts, markdown tables."""
import unittest

from snapbench.stats import fmt_ratio, flat_verdict, human, median, read_verdict, row_medians, speed_ratio, table

C_PEERS = ["fuse-overlayfs", "squashfuse", "bindfs", "mergerfs"]


class MedianTests(unittest.TestCase):
    def test_odd_and_even_counts(self):
        self.assertEqual(median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(median([4.0, 1.0, 2.0, 3.0]), 2.5)

    def test_nothing_measured_is_none(self):
        self.assertIsNone(median([]))


class FormatTests(unittest.TestCase):
    def test_ratio_digits_grow_as_it_shrinks(self):
        self.assertEqual(fmt_ratio(2.5), "2.50×")
        self.assertEqual(fmt_ratio(0.095), "0.10×")
        self.assertEqual(fmt_ratio(0.0123), "0.012×")
        self.assertEqual(fmt_ratio(0.00034), "3.4e-04×")

    def test_human_sizes(self):
        self.assertEqual(human(1 << 30), "1 GiB")
        self.assertEqual(human(128 << 20), "128 MiB")
        self.assertEqual(human(3 << 19), "1.5 MiB")
        self.assertEqual(human(4096), "4 KiB")
        self.assertEqual(human(12), "12 B")


class SpeedRatioTests(unittest.TestCase):
    def test_peer_time_over_snapfs_time(self):
        self.assertEqual(speed_ratio(3.0, 1.5), "2.00×")
        self.assertEqual(speed_ratio(1.0, 4.0), "0.25×")

    def test_a_stopped_system_makes_the_ratio_a_bound(self):
        # The cap is a lower bound of the stopped system's time.
        self.assertEqual(speed_ratio(5.0, 1.0, peer_stopped=True), "> 5.00×")
        self.assertEqual(speed_ratio(1.0, 5.0, snapfs_stopped=True), "< 0.20×")
        self.assertEqual(speed_ratio(5.0, 5.0, peer_stopped=True, snapfs_stopped=True), "1.00×")

    def test_unmeasured_is_a_dash(self):
        self.assertEqual(speed_ratio(None, 1.0), "—")
        self.assertEqual(speed_ratio(1.0, None), "—")

    def test_row_medians_count_the_cap_of_a_stopped_system(self):
        row = {"times": {"raw": [1.0, 3.0, 2.0], "bindfs": []}, "timeouts": {"bindfs": 5}}
        self.assertEqual(row_medians(row), {"raw": 2.0, "bindfs": 5.0})


class ReadVerdictTests(unittest.TestCase):
    def test_pass_when_as_fast_as_the_best_c_peer(self):
        med = {"raw": 0.5, "SnapFS": 1.0, "fuse-overlayfs": 1.0, "bindfs": 4.0}
        self.assertEqual(read_verdict("find_warm", med, {}, C_PEERS), ("≥ 1.0× best C FUSE peer", "PASS"))

    def test_miss_when_the_best_c_peer_is_faster(self):
        med = {"raw": 0.5, "SnapFS": 1.1, "fuse-overlayfs": 1.0, "bindfs": 4.0}
        self.assertEqual(read_verdict("find_warm", med, {}, C_PEERS)[1], "MISS")

    def test_restic_is_not_a_c_peer(self):
        # A slower restic mount does not make a row pass that the C peers fail, nor a faster one fail it.
        med = {"raw": 0.5, "SnapFS": 1.1, "fuse-overlayfs": 1.0, "restic mount": 9.0}
        self.assertEqual(read_verdict("tar_warm", med, {}, C_PEERS)[1], "MISS")
        med = {"raw": 0.5, "SnapFS": 1.0, "fuse-overlayfs": 2.0, "restic mount": 0.1}
        self.assertEqual(read_verdict("tar_warm", med, {}, C_PEERS)[1], "PASS")

    def test_warm_tar_must_also_stay_within_three_times_raw(self):
        med = {"raw": 0.3, "SnapFS": 1.0, "fuse-overlayfs": 2.0}
        target, res = read_verdict("tar_warm", med, {}, C_PEERS)
        self.assertEqual((target, res), ("≥ 1.0× best C FUSE peer; ≤ 3× raw time", "MISS"))
        med["raw"] = 0.34
        self.assertEqual(read_verdict("tar_warm", med, {}, C_PEERS)[1], "PASS")

    def test_warm_sequential_read_must_also_reach_eight_tenths_of_raw(self):
        med = {"raw": 0.79, "SnapFS": 1.0, "squashfuse": 2.0}
        self.assertEqual(read_verdict("seq_warm", med, {}, C_PEERS)[1], "MISS")
        med["raw"] = 0.8
        self.assertEqual(read_verdict("seq_warm", med, {}, C_PEERS)[1], "PASS")

    def test_snapfs_stopped_is_a_miss_and_unmeasured_is_no_verdict(self):
        med = {"SnapFS": 5.0, "bindfs": 5.0}
        self.assertEqual(read_verdict("tar_warm", med, {"SnapFS": 5}, C_PEERS)[1], "MISS")
        self.assertEqual(read_verdict("tar_warm", {"bindfs": 1.0}, {}, C_PEERS)[1], "—")

    def test_no_c_peer_measured_is_a_miss(self):
        self.assertEqual(read_verdict("ls_root", {"raw": 1.0, "SnapFS": 1.0}, {}, C_PEERS)[1], "MISS")


class FlatVerdictTests(unittest.TestCase):
    def test_within_twenty_percent_either_way(self):
        self.assertEqual(flat_verdict([10.0, 11.0, 12.0]), (1.2, "PASS"))
        self.assertEqual(flat_verdict([10.0, 9.0, 8.0]), (0.8, "PASS"))
        self.assertEqual(flat_verdict([10.0, 10.0, 12.5])[1], "MISS")
        self.assertEqual(flat_verdict([10.0, 10.0, 7.5])[1], "MISS")


class TableTests(unittest.TestCase):
    def test_header_separator_rows(self):
        self.assertEqual(table(["a", "b"], [[1, "x"], ["2", "y"]]),
                         ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"])

    def test_a_row_of_the_wrong_width_is_refused(self):
        with self.assertRaises(ValueError):
            table(["a", "b"], [["only one"]])


if __name__ == "__main__":
    unittest.main()
