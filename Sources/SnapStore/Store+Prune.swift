import Foundation

/// What a prune decided: every snapshot it considered, kept (with every reason) or deleted, and the delete's plan.
public struct PruneResult: Codable, Sendable, Hashable {
    public var dryRun: Bool
    public var policy: RetentionPolicy
    public var kind: SnapshotKind?
    public var job: String?
    /// Newest first within each job, jobs in name order.
    public var decisions: [PruneDecision]
    /// The delete of the snapshots the policy lets go: what it removed (or would remove), and those it refused
    /// (held, recovery point, in use), which are among the kept decisions with the refusal as their reason.
    public var plan: DeletePlan

    public var kept: [PruneDecision] { decisions.filter { $0.keep } }
    public var deleted: [PruneDecision] { decisions.filter { !$0.keep } }
}

public struct PruneDecision: Codable, Sendable, Hashable {
    public var name: String
    public var job: String?
    public var kind: SnapshotKind
    public var time: Double
    public var keep: Bool
    /// Why it stays: the policy's rules that keep it, or why the delete refused it.
    public var reasons: [String]
}

extension Store {
    /// Deletes, through the checked delete, the complete snapshots (of `kind` and `job`, when given) that `policy`
    /// does not keep; each job's snapshots are a timeline of their own, as restic groups by host. A held snapshot,
    /// a recovery point or one in use stays and is reported as kept with why. With `dryRun`, nothing changes.
    public func prune(_ policy: RetentionPolicy, kind: SnapshotKind? = nil, job: String? = nil,
                      dryRun: Bool) throws(StoreError) -> PruneResult {
        let policy = try policy.validated()
        if !dryRun { try requireWritable("prune") }
        if !isReadOnly { try hooks.refresh(self) }
        let all = try snapshots().filter { s in (kind == nil || s.kind == kind) && (job == nil || s.job == job) }
        if let job, all.isEmpty, try !snapshots().contains(where: { $0.job == job }) {
            throw .badInput("no snapshot of job '\(job)' in this store")
        }
        let byName = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var decisions: [PruneDecision] = []
        for group in Dictionary(grouping: all, by: { $0.job ?? "" }).sorted(by: { $0.key < $1.key }) {
            let candidates = group.value.map {
                RetentionPolicy.Candidate(name: $0.name, time: $0.completedAt ?? $0.createdAt,
                                          sequence: Int64($0.externalID ?? "") ?? $0.id)
            }
            for d in policy.apply(candidates) {
                let s = byName[d.name]!
                decisions.append(PruneDecision(name: d.name, job: s.job, kind: s.kind, time: d.time, keep: d.keep, reasons: d.reasons))
            }
        }
        let doomed = decisions.filter { !$0.keep }.map(\.name)
        let plan = try delete(doomed, reason: "prune", dryRun: dryRun)
        let refused = Dictionary(plan.refused.map { ($0.snapshot, $0.reason) }, uniquingKeysWith: { a, _ in a })
        for i in decisions.indices {
            if let why = refused[decisions[i].name] {
                decisions[i].keep = true
                decisions[i].reasons = [why]
            } else if plan.missing.contains(decisions[i].name) {
                // Gone meanwhile (Flink subsumed it, another process deleted it): neither kept nor deleted here.
                decisions[i].keep = true
                decisions[i].reasons = ["gone before the prune reached it"]
            }
        }
        if !dryRun {
            recordEvent("prune", snapshot: nil, "policy \(policy.summary): \(plan.snapshots.count) deleted, \(decisions.filter(\.keep).count) kept (\(plan.refused.count) of them refused by the delete's rules)")
        }
        return PruneResult(dryRun: dryRun, policy: policy, kind: kind, job: job, decisions: decisions, plan: plan)
    }
}

extension RetentionPolicy {
    /// The policy as the options that give it, e.g. "--keep-last 3 --keep-daily 7".
    public var summary: String {
        var parts: [String] = []
        for (flag, n) in [("last", last), ("hourly", hourly), ("daily", daily), ("weekly", weekly), ("monthly", monthly), ("yearly", yearly)] where n != 0 {
            parts.append("--keep-\(flag) \(n == Self.unlimited ? "unlimited" : String(n))")
        }
        if let within, !within.isZero { parts.append("--keep-within \(within)") }
        return parts.joined(separator: " ")
    }
}
