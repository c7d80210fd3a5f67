"""The report's tables from made-up results: every section's rows line up with its header, cells and verdicts say what
the figures say, and hand-written analysis in BENCHMARKS.md survives a rerun."""
import unittest

from snapbench.config import MODES, NOTES_MARKER
from snapbench.document import keep_analysis
from snapbench.report import render

CFG = MODES["default"]


def tables_of(text):
    """The markdown tables of a report, each as its list of lines."""
    out, cur = [], []
    for line in text.split("\n"):
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_results():
    times = lambda **kw: {k.replace("_", "-").replace("restic-mount", "restic mount"): v for k, v in kw.items()}
    return {
        "read": {
            "tar_warm": {"title": "warm tar", "times": times(raw=[0.10, 0.12, 0.11], SnapFS=[0.11, 0.12, 0.13],
                                                              fuse_overlayfs=[0.8, 0.9, 0.85], squashfuse=[0.5, 0.6, 0.55],
                                                              bindfs=[], mergerfs=[], restic_mount=[2.5, 2.4, 2.6]),
                         "timeouts": {"bindfs": 5, "mergerfs": 5}},
            "find_warm": {"title": "warm find", "times": times(raw=[0.2], SnapFS=[0.5], fuse_overlayfs=[0.4], squashfuse=[1.0],
                                                                bindfs=[2.0], mergerfs=[2.0])},
        },
        "read_meta": {"restic_backup_s": 4.2},
    }


class ReadSectionTests(unittest.TestCase):
    def test_rows_line_up_with_the_header_and_restic_has_a_column(self):
        text, _ = render(read_results(), CFG)
        (tbl,) = tables_of(text)
        header = cells(tbl[0])
        self.assertIn("restic mount", header)
        self.assertIn("vs restic mount", header)
        for line in tbl[2:]:
            self.assertEqual(len(cells(line)), len(header), line)

    def test_cells_ratios_and_verdicts(self):
        text, verdicts = render(read_results(), CFG)
        (tbl,) = tables_of(text)
        header = cells(tbl[0])
        tar = dict(zip(header, cells(tbl[2])))
        self.assertEqual(tar["SnapFS"], "0.120")
        self.assertEqual(tar["restic mount"], "2.500")
        self.assertEqual(tar["vs restic mount"], "20.83×")
        self.assertEqual(tar["bindfs"], "> 5 (stopped)")
        self.assertEqual(tar["vs bindfs"], "> 41.67×")
        self.assertEqual(tar["result"], "PASS")
        find = dict(zip(header, cells(tbl[3])))
        self.assertEqual(find["restic mount"], "—")
        self.assertEqual(find["vs restic mount"], "—")
        self.assertEqual(find["result"], "MISS")  # fuse-overlayfs 0.4 s beats SnapFS's 0.5 s
        self.assertEqual(verdicts, [("warm tar", "PASS"), ("warm find", "MISS")])
        self.assertIn("`restic backup` of the small files: 4.2 s", text)


class OtherSectionTests(unittest.TestCase):
    def test_delete_and_move_flat_targets(self):
        ops = {n: {"populate": 1.0,
                   "delete": {"wall": [0.010, 0.011, 0.012], "cpu": [0.005]},
                   "move": {"wall": [0.010 * (1 + n / 1000)], "cpu": [0.004]}} for n in (10, 100, 1000)}
        text, verdicts = render({"ops": ops}, CFG)
        (tbl,) = tables_of(text)
        rows = {cells(l)[0]: cells(l) for l in tbl[2:]}
        self.assertEqual(rows["`snapfs delete` wall"][1:], ["11.0", "11.0", "11.0", "1.00×", "within ±20%", "PASS"])
        self.assertEqual(rows["`snapfs move` wall"][-3:], ["1.98×", "— (±20%, as delete)", "MISS"])
        self.assertEqual(rows["`snapfs delete` CPU"][-1], "—")
        self.assertEqual(verdicts, [("`snapfs delete` 1,000 vs 10", "PASS"), ("`snapfs move` 1,000 vs 10", "MISS")])

    def test_memory_rows_compare_with_before(self):
        mem = {"entries": 200_000, "snapshots": 4, "populate": 3.0, "walked": 200_004, "walk_s": 9.0, "forget_s": 1.5,
               "before": (20 << 20, 10), "walk": (60 << 20, 200_010), "after": (25 << 20, 12), "peak": 61 << 20}
        text, verdicts = render({"memory": mem}, CFG)
        (tbl,) = tables_of(text)
        self.assertEqual(cells(tbl[3]), ["after the walk (200,004 entries, 9.0 s)", "60.0", "200,010", "3.00×"])
        self.assertEqual(cells(tbl[4])[-1], "1.25×")
        self.assertIn("Peak RSS during the walk: 61.0 MiB", text)
        self.assertEqual(verdicts, [])

    def test_scale_row_against_raw(self):
        row = {"title": "cold find", "times": {"raw": [10.0, 11.0, 12.0], "SnapFS": [15.0, 16.0, 17.0],
                                               "fuse-overlayfs": [20.0], "restic mount": []},
               "timeouts": {"restic mount": 180}}
        text, verdicts = render({"scale": {"entries": 1_000_000, "runs": 3, "row": row, "setup": {"x": 1.0}}}, CFG)
        (tbl,) = tables_of(text)
        header, r = cells(tbl[0]), cells(tbl[2])
        self.assertEqual(len(header), len(r))
        got = dict(zip(header, r))
        self.assertEqual(got["SnapFS vs raw"], "0.69×")
        self.assertEqual(got["restic mount"], "> 180 (stopped)")
        self.assertEqual(got["vs restic mount"], "> 11.25×")
        self.assertEqual(got["target"], "≤ 1.5× raw time")
        self.assertEqual(verdicts, [("cold find", "PASS")])
        row["times"]["SnapFS"] = [17.0]
        self.assertEqual(render({"scale": {"entries": 1, "runs": 1, "row": row}}, CFG)[1], [("cold find", "MISS")])

    def test_nothing_run_is_an_empty_report(self):
        self.assertEqual(render({}, CFG), ("", []))


class KeepAnalysisTests(unittest.TestCase):
    def test_text_from_the_marker_on_survives(self):
        old = "# Benchmarks\nold tables\n" + NOTES_MARKER + "\n## Where the time goes\nby hand\n"
        self.assertEqual(keep_analysis(old, "# Benchmarks\nnew tables\n"),
                         "# Benchmarks\nnew tables\n\n" + NOTES_MARKER + "\n## Where the time goes\nby hand\n")

    def test_without_a_marker_the_new_text_alone(self):
        self.assertEqual(keep_analysis("# old\n", "# new\n"), "# new\n")
        self.assertEqual(keep_analysis("", "# new\n"), "# new\n")


class CliMemoryTests(unittest.TestCase):
    def test_time_v_report_is_parsed(self):
        from snapbench.cli_memory import parse_time_v
        report = ("\tCommand being timed: \"snapfs verify s\"\n\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.50\n"
                  "\tMaximum resident set size (kbytes): 51200\n")
        self.assertEqual(parse_time_v(report), (50 << 20, 3723.5))
        self.assertEqual(parse_time_v(report.replace("1:02:03.50", "0:07.25"))[1], 7.25)

    def test_rows_pass_under_200_mib(self):
        text, verdicts = render({"cli_memory": {"files": 1_000_000, "populate_s": 60.0,
                                                "verify": (150 << 20, 80.0), "export": (250 << 20, 300.0)}}, CFG)
        (tbl,) = tables_of(text)
        self.assertEqual(cells(tbl[2]), ["`snapfs verify`", "150.0", "80.0", "< 200 MiB", "PASS"])
        self.assertEqual(cells(tbl[3])[-1], "MISS")
        self.assertEqual([r for _, r in verdicts], ["PASS", "MISS"])


if __name__ == "__main__":
    unittest.main()
