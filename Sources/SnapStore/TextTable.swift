import Foundation

/// A plain-text table whose columns are as wide as their widest cell: no name is ever cut short, so whatever a
/// table shows can be pasted back into a command. Widths count characters as a terminal shows most text (one
/// column per `Character`).
public struct TextTable: Sendable {
    public enum Alignment: Sendable { case left, right }

    public struct Column: Sendable {
        public var title: String
        public var alignment: Alignment
        public init(_ title: String, _ alignment: Alignment = .left) { self.title = title; self.alignment = alignment }
    }

    public var columns: [Column]
    public var rows: [[String]] = []
    /// Between two columns.
    public var separator: String

    public init(_ columns: [Column], separator: String = "  ") {
        self.columns = columns
        self.separator = separator
    }

    public mutating func append(_ row: [String]) {
        precondition(row.count == columns.count, "a row has one cell per column")
        rows.append(row)
    }

    /// Each column's width: its widest cell or title (titles count only when shown).
    public func widths(titles: Bool = true) -> [Int] {
        columns.indices.map { i in ((titles ? [columns[i].title] : []) + rows.map { $0[i] }).map(\.count).max() ?? 0 }
    }

    /// The title line (unless `titles` is false), an optional rule under it, then one line per row; the last
    /// column is not padded, so no line ends in spaces.
    public func render(rule: String? = nil, titles: Bool = true) -> String {
        let w = widths(titles: titles)
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: max(0, w[i] - cell.count))
                let last = i == cells.count - 1
                switch columns[i].alignment {
                case .left: parts.append(last ? cell : cell + pad)
                case .right: parts.append(pad + cell)
                }
            }
            return parts.joined(separator: separator)
        }
        var out = titles ? line(columns.map(\.title)) + "\n" : ""
        if titles, let rule { out += w.map { String(repeating: rule, count: $0) }.joined(separator: separator.replacingOccurrences(of: " ", with: rule)) + "\n" }
        for r in rows { out += line(r) + "\n" }
        return out
    }
}
