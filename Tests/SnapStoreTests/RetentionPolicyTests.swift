import Foundation
import SnapStore
import XCTest

/// restic's `forget` rules, decided from names and times alone.
final class RetentionPolicyTests: XCTestCase {
    /// Seconds since 1970 of a UTC date and time.
    private func t(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 12, _ mi: Int = 0) -> Double {
        var c = DateComponents()
        c.year = y; c.month = mo; c.day = d; c.hour = h; c.minute = mi
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.date(from: c)!.timeIntervalSince1970
    }

    private func candidates(_ times: [(String, Double)]) -> [RetentionPolicy.Candidate] {
        times.enumerated().map { RetentionPolicy.Candidate(name: $0.element.0, time: $0.element.1, sequence: Int64($0.offset)) }
    }

    private func kept(_ p: RetentionPolicy, _ c: [RetentionPolicy.Candidate]) -> [String] {
        p.apply(c).filter(\.keep).map(\.name)
    }

    func testKeepLastKeepsTheNewestAndBreaksTiesBySequence() {
        // Given oldest first and with two at the same second: the later sequence counts as newer.
        let c = candidates([("a", t(2026, 1, 1)), ("b", t(2026, 1, 2)), ("c", t(2026, 1, 3)), ("d", t(2026, 1, 3)), ("e", t(2026, 1, 4))])
        let decisions = RetentionPolicy(last: 3).apply(c.shuffled())
        XCTAssertEqual(decisions.map(\.name), ["e", "d", "c", "b", "a"], "newest first")
        XCTAssertEqual(decisions.filter(\.keep).map(\.name), ["e", "d", "c"])
        XCTAssertEqual(decisions.first?.reasons, ["last snapshot"])
        XCTAssertEqual(decisions.last?.reasons, [])
        XCTAssertEqual(kept(RetentionPolicy(last: RetentionPolicy.unlimited), c).count, 5)
    }

    func testKeepDailyKeepsEachDaysNewestAndTheOldestWhileDaysAreLeft() {
        let c = candidates([
            ("d1-early", t(2026, 3, 1, 8)), ("d1-late", t(2026, 3, 1, 20)),
            ("d2-early", t(2026, 3, 2, 1)), ("d2-late", t(2026, 3, 2, 23, 59)),
            ("d4-only", t(2026, 3, 4, 6)),
            ("d5-early", t(2026, 3, 5, 0, 1)), ("d5-mid", t(2026, 3, 5, 9)), ("d5-late", t(2026, 3, 5, 18)),
        ])
        // Two days: the two most recent days that have a snapshot (the 4th counts, the empty 3rd does not).
        XCTAssertEqual(kept(RetentionPolicy(daily: 2), c), ["d5-late", "d4-only"])
        XCTAssertEqual(kept(RetentionPolicy(daily: 3), c), ["d5-late", "d4-only", "d2-late"])
        // More days asked for than there are: every day's newest, and the oldest snapshot as well.
        let all = RetentionPolicy(daily: 10).apply(c)
        XCTAssertEqual(all.filter(\.keep).map(\.name), ["d5-late", "d4-only", "d2-late", "d1-late", "d1-early"])
        XCTAssertEqual(all.last?.reasons, ["daily snapshot (the oldest, kept while periods are left)"])
        // Exactly as many days as there are: the count is used up by the oldest day's newest, so no extra.
        XCTAssertEqual(kept(RetentionPolicy(daily: 4), c), ["d5-late", "d4-only", "d2-late", "d1-late"])
    }

    func testHourlyWeeklyMonthlyYearlyUseCalendarPeriods() {
        let hours = candidates([("h10a", t(2026, 6, 1, 10, 5)), ("h10b", t(2026, 6, 1, 10, 55)), ("h11", t(2026, 6, 1, 11, 0)), ("h13", t(2026, 6, 1, 13, 30))])
        XCTAssertEqual(kept(RetentionPolicy(hourly: 2), hours), ["h13", "h11"])
        XCTAssertEqual(kept(RetentionPolicy(hourly: 3), hours), ["h13", "h11", "h10b"])

        // ISO weeks start on Monday: Sunday 2026-03-08 and Monday 2026-03-09 are in different weeks.
        let weeks = candidates([("sat", t(2026, 3, 7)), ("sun", t(2026, 3, 8)), ("mon", t(2026, 3, 9)), ("wed", t(2026, 3, 11))])
        XCTAssertEqual(kept(RetentionPolicy(weekly: 1), weeks), ["wed"])
        XCTAssertEqual(kept(RetentionPolicy(weekly: 2), weeks), ["wed", "sun"])
        // The ISO year: 2027-01-01 (a Friday) is in week 53 of 2026, with 2026-12-28.
        let isoYear = candidates([("dec28", t(2026, 12, 28)), ("jan1", t(2027, 1, 1)), ("jan4", t(2027, 1, 4))])
        XCTAssertEqual(kept(RetentionPolicy(weekly: 2), isoYear), ["jan4", "jan1"])

        let months = candidates([("jan", t(2026, 1, 31, 23)), ("feb1", t(2026, 2, 1, 0)), ("feb2", t(2026, 2, 20)), ("apr", t(2026, 4, 1))])
        XCTAssertEqual(kept(RetentionPolicy(monthly: 2), months), ["apr", "feb2"])
        let years = candidates([("y24", t(2024, 5, 1)), ("y25a", t(2025, 1, 1)), ("y25b", t(2025, 12, 31, 23)), ("y26", t(2026, 1, 1, 0))])
        XCTAssertEqual(kept(RetentionPolicy(yearly: 2), years), ["y26", "y25b"])
        XCTAssertEqual(kept(RetentionPolicy(yearly: RetentionPolicy.unlimited), years), ["y26", "y25b", "y24"])
    }

    func testKeepWithinCountsFromTheNewestSnapshotNotFromNow() {
        // Long ago: relative to now nothing is within two days, relative to the newest three are.
        let c = candidates([("old", t(2020, 1, 1)), ("edge", t(2020, 1, 8, 12)), ("in1", t(2020, 1, 8, 12, 1)), ("in2", t(2020, 1, 9)), ("newest", t(2020, 1, 10, 12))])
        let d = RetentionPolicy(within: KeepDuration(days: 2)).apply(c)
        XCTAssertEqual(d.filter(\.keep).map(\.name), ["newest", "in2", "in1"], "exactly two days before the newest is not newer than that")
        XCTAssertEqual(d.first?.reasons, ["within 2d"])
    }

    func testASnapshotIsKeptIfAnyRuleKeepsItWithEveryReason() {
        let c = candidates([("a", t(2026, 5, 1, 9)), ("b", t(2026, 5, 1, 10)), ("c", t(2026, 5, 2, 9)), ("d", t(2026, 5, 3, 9)), ("e", t(2026, 5, 3, 10))])
        let d = RetentionPolicy(last: 1, daily: 2, within: KeepDuration(hours: 1)).apply(c)
        XCTAssertEqual(d.filter(\.keep).map(\.name), ["e", "c"])
        XCTAssertEqual(d.first { $0.name == "e" }?.reasons, ["within 1h", "last snapshot", "daily snapshot"])
        XCTAssertEqual(d.first { $0.name == "c" }?.reasons, ["daily snapshot"])
        XCTAssertEqual(d.first { $0.name == "d" }?.keep, false, "within 1h of 10:00 is after 09:00, not at it")
    }

    func testDurationsParseAsResticWritesThemAndCountCalendarMonths() throws {
        XCTAssertEqual(try KeepDuration(parsing: "1y5m7d2h"), KeepDuration(years: 1, months: 5, days: 7, hours: 2))
        XCTAssertEqual(try KeepDuration(parsing: "36h"), KeepDuration(hours: 36))
        XCTAssertEqual(try KeepDuration(parsing: "14d").description, "14d")
        for bad in ["", "5", "d", "5x", "1d1d", "1.5d", "-2d", "2 d"] {
            XCTAssertThrowsStoreError(try KeepDuration(parsing: bad)) { if case .badInput(let m) = $0 { return m.contains("--keep-within") } else { return false } }
        }
        // One month before 31 March 2026 is 3 March (there is no 31 February; the days roll over as Go's AddDate).
        XCTAssertEqual(KeepDuration(months: 1).before(t(2026, 3, 31, 12)), t(2026, 3, 3, 12))
        XCTAssertEqual(KeepDuration(years: 1, hours: 2).before(t(2026, 3, 31, 12)), t(2025, 3, 31, 10))
    }

    func testAnEmptyOrNegativePolicyIsRefused() {
        XCTAssertThrowsStoreError(try RetentionPolicy().validated()) { if case .badInput(let m) = $0 { return m.contains("no retention rule") } else { return false } }
        XCTAssertThrowsStoreError(try RetentionPolicy(within: KeepDuration()).validated()) { if case .badInput = $0 { return true } else { return false } }
        XCTAssertThrowsStoreError(try RetentionPolicy(last: -2).validated()) { if case .badInput(let m) = $0 { return m.contains("--keep-last") } else { return false } }
        XCTAssertNoThrow(try RetentionPolicy(daily: RetentionPolicy.unlimited).validated())
        XCTAssertEqual(RetentionPolicy(last: 2, weekly: RetentionPolicy.unlimited, within: KeepDuration(days: 3)).summary,
                       "--keep-last 2 --keep-weekly unlimited --keep-within 3d")
    }
}
