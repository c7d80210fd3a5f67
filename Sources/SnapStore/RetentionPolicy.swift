import Foundation

/// Which snapshots to keep, by restic's `forget` rules: snapshots are taken newest first; `last` keeps the newest N;
/// each calendar rule (hourly … yearly) keeps the newest snapshot of each of the N most recent periods that have
/// one; `within` keeps every snapshot newer than the duration before the newest snapshot. A snapshot is kept if any
/// rule keeps it. When a calendar rule still has periods left after the oldest snapshot, the oldest is kept too (it
/// is the best the history offers for that rule). Periods are UTC calendar periods; weeks are ISO weeks.
///
/// Pure: it decides from names and times only, and knows nothing of holds or recovery points, which the delete that
/// follows checks for itself.
public struct RetentionPolicy: Codable, Sendable, Hashable {
    /// A count meaning "every period".
    public static let unlimited = -1

    public var last = 0
    public var hourly = 0
    public var daily = 0
    public var weekly = 0
    public var monthly = 0
    public var yearly = 0
    public var within: KeepDuration?

    public init(last: Int = 0, hourly: Int = 0, daily: Int = 0, weekly: Int = 0, monthly: Int = 0, yearly: Int = 0,
                within: KeepDuration? = nil) {
        self.last = last; self.hourly = hourly; self.daily = daily; self.weekly = weekly
        self.monthly = monthly; self.yearly = yearly; self.within = within
    }

    /// No rule given: such a policy would keep nothing, which is never what was meant.
    public var isEmpty: Bool {
        [last, hourly, daily, weekly, monthly, yearly].allSatisfy { $0 == 0 } && (within?.isZero ?? true)
    }

    /// Throws on counts below `unlimited` and on an empty policy.
    public func validated() throws(StoreError) -> RetentionPolicy {
        for (flag, n) in [("last", last), ("hourly", hourly), ("daily", daily), ("weekly", weekly), ("monthly", monthly), ("yearly", yearly)]
        where n < Self.unlimited {
            throw .badInput("--keep-\(flag) \(n): a count must be 0 or more, or 'unlimited'")
        }
        if isEmpty {
            throw .badInput("no retention rule given: use at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within (nothing was deleted)")
        }
        return self
    }

    /// One snapshot as the policy sees it.
    public struct Candidate: Sendable, Hashable {
        public var name: String
        /// Seconds since 1970.
        public var time: Double
        /// Breaks ties between equal times: the higher is newer (a catalog id, a checkpoint id).
        public var sequence: Int64

        public init(name: String, time: Double, sequence: Int64) {
            self.name = name; self.time = time; self.sequence = sequence
        }
    }

    public struct Decision: Codable, Sendable, Hashable {
        public var name: String
        public var time: Double
        public var keep: Bool
        /// Every rule that keeps it, e.g. "last snapshot", "daily snapshot", "within 2d".
        public var reasons: [String]
    }

    /// Decides every candidate; the result is newest first.
    public func apply(_ candidates: [Candidate]) -> [Decision] {
        let list = candidates.sorted { ($0.time, $0.sequence) > ($1.time, $1.sequence) }
        guard let newest = list.first else { return [] }
        var buckets = [
            Bucket(count: last, reason: "last snapshot") { _, nr in nr },
            Bucket(count: hourly, reason: "hourly snapshot") { t, _ in Self.period(t, [.year, .month, .day, .hour]) },
            Bucket(count: daily, reason: "daily snapshot") { t, _ in Self.period(t, [.year, .month, .day]) },
            Bucket(count: weekly, reason: "weekly snapshot") { t, _ in Self.isoWeek(t) },
            Bucket(count: monthly, reason: "monthly snapshot") { t, _ in Self.period(t, [.year, .month]) },
            Bucket(count: yearly, reason: "yearly snapshot") { t, _ in Self.period(t, [.year]) },
        ]
        let cutoff = within.map { $0.before(newest.time) }
        var out: [Decision] = []
        for (nr, c) in list.enumerated() {
            var reasons: [String] = []
            if let cutoff, let within, c.time > cutoff { reasons.append("within \(within)") }
            for i in buckets.indices where buckets[i].count > 0 || buckets[i].count == Self.unlimited {
                let value = buckets[i].period(c.time, nr)
                let oldest = nr == list.count - 1
                if value != buckets[i].lastPeriod || oldest {
                    let newPeriod = value != buckets[i].lastPeriod
                    buckets[i].lastPeriod = value
                    if buckets[i].count > 0 { buckets[i].count -= 1 }
                    reasons.append(buckets[i].reason + (newPeriod ? "" : " (the oldest, kept while periods are left)"))
                }
            }
            out.append(Decision(name: c.name, time: c.time, keep: !reasons.isEmpty, reasons: reasons))
        }
        return out
    }

    private struct Bucket {
        var count: Int
        let reason: String
        let period: (Double, Int) -> Int
        var lastPeriod = -1

        init(count: Int, reason: String, period: @escaping (Double, Int) -> Int) {
            self.count = count; self.reason = reason; self.period = period
        }
    }

    static let utc = TimeZone(identifier: "UTC")!

    /// A number naming the calendar period (UTC) `t` falls in, e.g. 2026120313 for the hour 13:00 of 3 Dec 2026.
    static func period(_ t: Double, _ units: [Calendar.Component]) -> Int {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = utc
        let c = cal.dateComponents(Set(units), from: Date(timeIntervalSince1970: t))
        var v = 0
        for u in units {
            switch u {
            case .year: v = c.year!
            case .month: v = v * 100 + c.month!
            case .day: v = v * 100 + c.day!
            case .hour: v = v * 100 + c.hour!
            default: break
            }
        }
        return v
    }

    /// The ISO week (year of the week × 100 + week) `t` falls in, in UTC.
    static func isoWeek(_ t: Double) -> Int {
        var cal = Calendar(identifier: .iso8601)
        cal.timeZone = utc
        let c = cal.dateComponents([.yearForWeekOfYear, .weekOfYear], from: Date(timeIntervalSince1970: t))
        return c.yearForWeekOfYear! * 100 + c.weekOfYear!
    }
}

/// A duration as restic's `--keep-within` writes it: years, months, days and hours, e.g. `1y5m7d2h`, `36h`, `14d`.
/// Years and months are calendar ones (UTC), so `1m` before 31 March is 3 March, as Go's `AddDate` counts.
public struct KeepDuration: Codable, Sendable, Hashable, CustomStringConvertible {
    public var years = 0, months = 0, days = 0, hours = 0

    public init(years: Int = 0, months: Int = 0, days: Int = 0, hours: Int = 0) {
        self.years = years; self.months = months; self.days = days; self.hours = hours
    }

    public init(parsing text: String) throws(StoreError) {
        let bad = StoreError.badInput("--keep-within '\(text)': expected a duration such as 1y5m7d2h, 14d or 36h (y years, m months, d days, h hours)")
        guard !text.isEmpty else { throw bad }
        var digits = ""
        var seen = Set<Character>()
        for ch in text {
            if ch.isASCII, ch.isNumber { digits.append(ch); continue }
            guard !digits.isEmpty, let n = Int(digits), n <= 100_000, "ymdh".contains(ch), seen.insert(ch).inserted else { throw bad }
            switch ch {
            case "y": years = n
            case "m": months = n
            case "d": days = n
            default: hours = n
            }
            digits = ""
        }
        if !digits.isEmpty { throw bad }
    }

    public var isZero: Bool { years == 0 && months == 0 && days == 0 && hours == 0 }

    /// The time this long before `t`.
    public func before(_ t: Double) -> Double {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = RetentionPolicy.utc
        let d = Date(timeIntervalSince1970: t)
        var c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .nanosecond], from: d)
        c.year! -= years; c.month! -= months; c.day! -= days
        // Calendar arithmetic on the date, as Go's AddDate: out-of-range days roll over into the next month.
        let shifted = cal.date(from: c) ?? d
        return shifted.timeIntervalSince1970 - Double(hours) * 3600
    }

    public var description: String {
        var s = ""
        if years > 0 { s += "\(years)y" }
        if months > 0 { s += "\(months)m" }
        if days > 0 { s += "\(days)d" }
        if hours > 0 || s.isEmpty { s += "\(hours)h" }
        return s
    }
}
