import Foundation

/// Where the executables SwiftPM built live, for tests that run them as a user would.
public enum BuiltTools {
    /// `SNAPFS_BIN`, else the `snapfs` SwiftPM built beside the test bundle (the bundle sits up to four directories
    /// below it, depending on the platform's bundle layout), else plain `snapfs` from `PATH`.
    public static let snapfs: String = {
        if let b = ProcessInfo.processInfo.environment["SNAPFS_BIN"] { return b }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("snapfs")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        return "snapfs"
    }()
}
