/// The format matrix of SPEC §3, as data: served at `.snapfs/formats` and printed by `snapfs formats`.
public struct FormatProperties: Codable, Sendable {
    public var format: SnapshotFormat
    public var whatIsWritten: String
    public var costToTake: String
    public var dependsOnOtherSnapshots: Bool
    public var selfContained: Bool
    public var relocatable: String
    public var importable: String
    public var local: String
    public var flink: String
}

public enum FormatMatrix {
    public static let rows: [FormatProperties] = [
        .init(format: .nativeIncremental,
              whatIsWritten: "only what changed since the previous snapshot; the rest is referenced",
              costToTake: "least", dependsOnOtherSnapshots: true, selfContained: false,
              relocatable: "no", importable: "no",
              local: "new or changed state files become new objects; unchanged ones are shared with the base snapshot",
              flink: "incremental checkpoint (checkpointType INCREMENTAL): taken on the job's interval; Flink refuses to trigger one explicitly (FLINK-33723), so a trigger fails with that reason"),
        .init(format: .nativeFull,
              whatIsWritten: "every file, anew", costToTake: "more", dependsOnOtherSnapshots: false, selfContained: false,
              relocatable: "no (store layout)", importable: "same engine only",
              local: "every state file copied to a new object of its own",
              flink: "user request: NATIVE savepoint (formatType NATIVE; never subsumed by Flink); system checkpoint: full checkpoint (checkpointType FULL), subject to Flink's retention"),
        .init(format: .canonical,
              whatIsWritten: "every file, in a portable self-describing layout", costToTake: "most",
              dependsOnOtherSnapshots: false, selfContained: true,
              relocatable: "yes: plain files plus a manifest with checksums; readable with no SnapFS installed",
              importable: "yes",
              local: "canonical/<id>/files plus MANIFEST.json and SHA256SUMS",
              flink: "CANONICAL savepoint (formatType CANONICAL)"),
    ]

    public static var table: String {
        // Columns as wide as their widest cell, so every value is shown whole.
        var t = TextTable([.init("property")] + rows.map { .init($0.format.rawValue) }, separator: " | ")
        func row(_ title: String, _ f: (FormatProperties) -> String) { t.append([title] + rows.map(f)) }
        row("time and space to take") { $0.costToTake }
        row("depends on other snapshots") { $0.dependsOnOtherSnapshots ? "yes" : "no" }
        row("self-contained") { $0.selfContained ? "yes" : "no" }
        row("relocatable outside store") { $0.relocatable }
        row("importable elsewhere") { $0.importable }
        var out = t.render(rule: "-")
        out += "\n"
        for r in rows {
            out += "\(r.format.rawValue):\n  written: \(r.whatIsWritten)\n  local:   \(r.local)\n  flink:   \(r.flink)\n"
        }
        out += "default: the store's configured format (local: native-incremental unless set; flink: canonical, Flink's default savepoint format, unless set)\n"
        return out
    }
}

import Foundation
