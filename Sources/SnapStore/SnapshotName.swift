/// The rules for snapshot names and labels (SPEC §6): what a user may type is exactly what is safe as one
/// path component in the mount and in the store, so no name can escape either.
public enum SnapshotName {
    public static let maxLength = 128

    /// Names the mount uses for itself.
    public static let reserved: Set<String> = ["latest", "lost+found", "by-job"]

    /// Validates a user-chosen label; the error names what was wrong.
    public static func validateLabel(_ label: String) throws(StoreError) {
        let scalars = label.unicodeScalars
        guard !scalars.isEmpty else { throw .badInput("label is empty: use 1–128 of A-Z a-z 0-9 . _ -") }
        guard scalars.count <= maxLength else {
            throw .badInput("label is \(scalars.count) characters long: at most \(maxLength) allowed")
        }
        for s in scalars where !isAllowed(s) {
            let shown = s.value < 0x20 || s.value == 0x7f ? String(format: "0x%02X", s.value) : "'\(s)'"
            throw .badInput("label '\(printable(label))' contains \(shown): only A-Z a-z 0-9 . _ - are allowed")
        }
        if label.hasPrefix(".") { throw .badInput("label '\(label)' starts with '.': not allowed") }
        if reserved.contains(label) { throw .badInput("label '\(label)' is reserved by the mount") }
        if isAutomatic(label) {
            throw .badInput("label '\(label)' looks like an automatic name (chk-N, sp-N): choose another")
        }
    }

    /// `chk-12` and `sp-7` are handed out by the store; a label must not collide with a future one.
    public static func isAutomatic(_ name: String) -> Bool {
        for prefix in ["chk-", "sp-"] where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if !rest.isEmpty && rest.allSatisfy({ $0.isASCII && $0.isNumber }) { return true }
        }
        return false
    }

    static func isAllowed(_ s: Unicode.Scalar) -> Bool {
        switch s {
        case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }

    /// User input as a message may quote it: control characters made visible, and cut only beyond the longest
    /// valid name, so a name that could be valid is always shown whole.
    static func printable(_ s: String) -> String {
        String(s.unicodeScalars.prefix(maxLength).map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) }) + (s.unicodeScalars.count > maxLength ? "…" : "")
    }
}

import Foundation
