import Foundation
import SnapStore

/// An intent's arguments as one line, the form the mount's control files take (`echo 4 > …/parallelism`,
/// `echo --from NAME --parallelism 2 > …/restart`) and the form a job's last intent records them in.
/// Words are separated by blanks; a value cannot contain one.
public enum IntentLine {
    /// The intents a line can ask for.
    public static let intents = ["rescale", "restart", "stop", "upgrade"]

    /// Carries out `intent` on `job` with the arguments `line` gives.
    public static func perform(_ intent: String, job: String, line: String, with intents: JobIntents) throws(StoreError) -> IntentRecord {
        var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).map(String.init)
        var options: [String: String] = [:]
        var positional: [String] = []
        let known: [String: Set<String>] = [
            "rescale": ["--jar", "--entry-class"],
            "restart": ["--from", "--parallelism", "--claim-mode", "--jar", "--entry-class"],
            "stop": ["--format"],
            "upgrade": ["--jar", "--parallelism", "--entry-class"],
        ]
        guard let allowed = known[intent] else { throw .badInput("no intent '\(intent)'; intents: \(Self.intents.joined(separator: ", "))") }
        while !words.isEmpty {
            let w = words.removeFirst()
            if w.hasPrefix("--") {
                var name = w, value: String?
                if let eq = w.firstIndex(of: "=") { name = String(w[..<eq]); value = String(w[w.index(after: eq)...]) }
                guard allowed.contains(name) else {
                    throw .badInput("\(intent) takes no option '\(name)'; it takes \(allowed.sorted().joined(separator: ", "))")
                }
                if value == nil {
                    guard !words.isEmpty else { throw .badInput("option \(name) of \(intent) needs a value") }
                    value = words.removeFirst()
                }
                options[name] = value
            } else {
                positional.append(w)
            }
        }
        func int(_ text: String?, _ what: String) throws(StoreError) -> Int? {
            guard let text else { return nil }
            guard let n = Int(text), n >= 1 else { throw .badInput("\(what) must be a whole number of at least 1; got '\(text)'") }
            return n
        }
        let jar = options["--jar"].map { JarSpec(jar: $0, entryClass: options["--entry-class"]) }
        switch intent {
        case "rescale":
            guard positional.count == 1, let p = try int(positional.first, "parallelism") else {
                throw .badInput("rescale takes one parallelism (e.g. `echo 4`); got '\(line.trimmingCharacters(in: .whitespacesAndNewlines))'")
            }
            return try intents.rescale(job, to: p, jar: jar)
        case "restart":
            if options["--from"] == nil, positional.count == 1 { options["--from"] = positional.removeFirst() }
            guard positional.isEmpty, let from = options["--from"] else {
                throw .badInput("restart takes --from SNAPSHOT [--parallelism N] [--claim-mode no-claim|claim] [--jar JAR]")
            }
            return try intents.restart(job, from: from, parallelism: try int(options["--parallelism"], "--parallelism"),
                                       claimMode: options["--claim-mode"] ?? "no-claim", jar: jar)
        case "stop":
            if options["--format"] == nil, positional.count == 1 { options["--format"] = positional.removeFirst() }
            guard positional.isEmpty else { throw .badInput("stop takes [--format canonical|native]") }
            return try intents.stop(job, format: options["--format"] ?? "canonical")
        default:
            if jar == nil, positional.count == 1 { options["--jar"] = positional.removeFirst() }
            guard positional.isEmpty, let j = options["--jar"] else { throw .badInput("upgrade takes --jar JAR [--parallelism N]") }
            return try intents.upgrade(job, jar: JarSpec(jar: j, entryClass: options["--entry-class"]),
                                       parallelism: try int(options["--parallelism"], "--parallelism"))
        }
    }
}
