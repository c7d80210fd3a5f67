import ArgumentParser
import Foundation
import SnapStore

struct HoldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold",
        abstract: "Hold a snapshot: delete, move and retention refuse it until it is released.",
        discussion: "Holding a held snapshot again replaces its reason. In the mount: setfattr -n user.snapfs.hold -v REASON MNT/S.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot name.") var name: String
    @Option(help: "Why it must stay (one line, shown by list, show and every refusal).") var reason: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        let old = try CLI.run { () throws(StoreError) in try store.hold(name, reason: reason) }
        let now = try CLI.run { () throws(StoreError) in try store.hold(of: name) }
        if json { CLI.printJSON(HoldChange(snapshot: name, hold: now, previous: old)); return }
        if let old { print("\(name) held: \(now?.reason ?? reason) (was: \(old.reason))") } else { print("\(name) held: \(now?.reason ?? reason)") }
    }
}

struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Release a snapshot's hold. In the mount: setfattr -x user.snapfs.hold MNT/S.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        let old = try CLI.run { () throws(StoreError) in try store.release(name) }
        if json { CLI.printJSON(HoldChange(snapshot: name, hold: nil, previous: old)) }
        guard let old else {
            CLI.fail(.badInput("\(name) is not held; nothing to release"))
            throw ExitCode(2)
        }
        if !json { print("\(name) released (its hold was: \(old.reason))") }
    }
}

/// `hold --json` and `release --json`: the hold now and the one it replaced or released.
struct HoldChange: Encodable {
    var snapshot: String
    var hold: Hold?
    var previous: Hold?
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete the snapshots a retention policy does not keep (restic's forget rules), through the checked delete.",
        discussion: """
        Snapshots are taken newest first, each job's on its own. --keep-last N keeps the newest N; --keep-hourly,
        --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly N keep the newest snapshot of each of the N most
        recent hours, days, ISO weeks, months, years (UTC) that have one, and the oldest snapshot too while periods
        are left; --keep-within 1y5m7d2h keeps every snapshot newer than that before the newest one. A snapshot any
        rule keeps stays. Counts take 'unlimited'. Held snapshots and recovery points always stay, reported as kept
        with why.
        """)
    @OptionGroup var options: StoreOptions
    @Option(help: "Keep the newest N snapshots.") var keepLast: String?
    @Option(help: "Keep the newest snapshot of each of the last N hours that have one.") var keepHourly: String?
    @Option(help: "Keep the newest snapshot of each of the last N days that have one.") var keepDaily: String?
    @Option(help: "Keep the newest snapshot of each of the last N ISO weeks that have one.") var keepWeekly: String?
    @Option(help: "Keep the newest snapshot of each of the last N months that have one.") var keepMonthly: String?
    @Option(help: "Keep the newest snapshot of each of the last N years that have one.") var keepYearly: String?
    @Option(help: "Keep every snapshot newer than this before the newest one, e.g. 1y5m7d2h, 14d, 36h.") var keepWithin: String?
    @Option(help: "Consider only snapshots of this kind: checkpoint or user.") var kind: String?
    @Option(help: "Consider only this job's snapshots (Flink job id).") var job: String?
    @Flag(help: "Show what would be deleted, removed and freed; change nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        let policy = try CLI.run { () throws(StoreError) -> RetentionPolicy in
            RetentionPolicy(last: try Self.count(keepLast, "last"), hourly: try Self.count(keepHourly, "hourly"),
                            daily: try Self.count(keepDaily, "daily"), weekly: try Self.count(keepWeekly, "weekly"),
                            monthly: try Self.count(keepMonthly, "monthly"), yearly: try Self.count(keepYearly, "yearly"),
                            within: try keepWithin.map { w throws(StoreError) in try KeepDuration(parsing: w) })
        }
        let kind = try CLI.run { () throws(StoreError) -> SnapshotKind? in
            guard let k = self.kind else { return nil }
            guard let v = SnapshotKind(rawValue: k) else { throw .badInput("--kind '\(k)': expected checkpoint or user") }
            return v
        }
        let r = try CLI.run { () throws(StoreError) in try store.prune(policy, kind: kind, job: job, dryRun: dryRun) }
        if json { CLI.printJSON(r); return }
        print("\(dryRun ? "dry run: " : "")policy \(r.policy.summary)\(kind.map { ", \($0.rawValue)s only" } ?? "")\(job.map { ", job \($0)" } ?? "")")
        for d in r.decisions {
            let verb = d.keep ? "keep" : (dryRun ? "would delete" : "deleted")
            print("\(verb) \(d.name)  \(CLI.date(d.time))\(d.keep ? "  " + d.reasons.joined(separator: ", ") : "")")
        }
        PlanText.print(r.plan, asked: false)
    }

    static func count(_ text: String?, _ flag: String) throws(StoreError) -> Int {
        guard let text else { return 0 }
        if text == "unlimited" { return RetentionPolicy.unlimited }
        guard let n = Int(text), n >= 0 else { throw .badInput("--keep-\(flag) '\(text)': expected a count (0 or more) or 'unlimited'") }
        return n
    }
}

/// A delete plan as text: the snapshots, every file removed and every shared file kept, the bytes freed.
enum PlanText {
    /// `asked`: the plan answers names the user gave (refusals then go to stderr as errors, by the caller).
    static func print(_ p: DeletePlan, asked: Bool) {
        let would = p.dryRun
        Swift.print(p.snapshots.isEmpty ? (would ? "would delete no snapshot" : "deleted no snapshot")
                    : "\(would ? "would delete" : "deleted") \(p.snapshots.count) snapshot\(p.snapshots.count == 1 ? "" : "s"): \(p.snapshots.joined(separator: ", "))")
        if !asked {
            for r in p.refused { Swift.print("refused \(r.snapshot): \(r.reason)") }
        }
        for f in p.removedFiles {
            Swift.print("  \(would ? "would remove" : "removed") \(PathBytes.printable(f.path)) (\(f.bytesOnDisk.map { "\($0) bytes" } ?? "missing already"))")
        }
        for f in p.keptShared {
            Swift.print("  \(would ? "would keep" : "kept") \(PathBytes.printable(f.path)) (\(f.size) bytes; shared with \(f.keptFor.joined(separator: ", ")))")
        }
        for d in p.directories { Swift.print("  \(would ? "would remove" : "removed") directory \(PathBytes.printable(d)) once empty") }
        Swift.print("\(p.removedFiles.count) files \(would ? "would be removed" : "removed"), \(p.keptShared.count) shared files kept, \(p.bytesFreed) bytes (\(CLI.bytes(p.bytesFreed))) \(would ? "would be freed" : "freed")")
    }
}
