import Foundation
import SnapStore
import XCTest

/// Names that are not UTF-8, FIFOs and device nodes, and sockets (which no format holds), through the real mount,
/// `tar` and export.
final class NameBytesMountTests: MountTestCase {
    override func tearDown() {
        let root = w?.root
        super.tearDown()
        // FileManager cannot remove a name that is not UTF-8.
        if let root { _ = Command.sh("rm -rf \(shellQuote(root.path))") }
    }

    func testNonUTF8NamesFIFOsAndDevicesComeBackAndSocketsAreReported() throws {
        let st = shellQuote(w.state.path)
        let prep = Command.sh("""
            set -e; cd \(st)
            printf 'not utf-8' > $'\\xff\\xfe'
            mkdir $'d\\x80'; printf 'inner' > $'d\\x80/\\xef\\x9e\\xab'
            ln -s $'\\xff\\xfe' link
            mkfifo pipe
            mknod null c 1 3
            python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
            """)
        XCTAssertTrue(prep.ok, prep.summary)
        let formats = ["native-incremental", "native-full", "canonical"]
        for f in formats { try w.snapshot("s-\(f)", format: f) }
        try w.mount()
        for f in formats {
            let snap = shellQuote(w.m + "/s-\(f)")
            let out = shellQuote(w.root.path + "/out-\(f)")
            let check = Command.sh("""
                set -e
                [ "$(LC_ALL=C ls -1 \(snap) | od -An -tx1 | tr -d ' \\n')" = "$(printf 'd\\x80\\nlink\\nnull\\npipe\\n\\xff\\xfe\\n' | od -An -tx1 | tr -d ' \\n')" ]
                cmp \(snap)/$'\\xff\\xfe' \(st)/$'\\xff\\xfe'
                cmp \(snap)/$'d\\x80'/$'\\xef\\x9e\\xab' \(st)/$'d\\x80'/$'\\xef\\x9e\\xab'
                [ "$(readlink \(snap)/link)" = $'\\xff\\xfe' ]
                [ -p \(snap)/pipe ] && [ -c \(snap)/null ] && [ "$(stat -c %t,%T,%a \(snap)/null)" = "1,3,644" ] && [ ! -e \(snap)/sock ]
                mkdir -p \(out)/tar
                tar -C \(snap) -cf \(out)/t.tar . && tar -C \(out)/tar -xf \(out)/t.tar
                cmp \(out)/tar/$'\\xff\\xfe' \(st)/$'\\xff\\xfe'
                cmp \(out)/tar/$'d\\x80'/$'\\xef\\x9e\\xab' \(st)/$'d\\x80'/$'\\xef\\x9e\\xab'
                [ -p \(out)/tar/pipe ] && [ "$(stat -c %t,%T \(out)/tar/null)" = "1,3" ]
                \(shellQuote(snapfsBinary)) export \(shellQuote(w.s)) s-\(f) \(out)/export
                cmp \(out)/export/files/$'\\xff\\xfe' \(st)/$'\\xff\\xfe'
                cmp \(out)/export/files/$'d\\x80'/$'\\xef\\x9e\\xab' \(st)/$'d\\x80'/$'\\xef\\x9e\\xab'
                [ -p \(out)/export/files/pipe ] && [ "$(stat -c %t,%T \(out)/export/files/null)" = "1,3" ]
                cd \(out)/export && sha256sum -c --strict SHA256SUMS
                """)
            XCTAssertTrue(check.ok, "\(f): \(check.summary)")
            let show = w.snapfs(["show", w.s, "s-\(f)", "--json"])
            XCTAssertTrue(show.ok, show.summary)
            let report = try JSONSerialization.jsonObject(with: Data(show.out.utf8)) as? [String: Any]
            let notHeld = report?["notHeld"] as? [[String: Any]] ?? []
            XCTAssertEqual(notHeld.compactMap { $0["path"] as? String }, ["sock"], show.out)
            XCTAssertEqual(notHeld.compactMap { $0["type"] as? String }, ["socket"])
            let text = w.snapfs(["show", w.s, "s-\(f)"])
            XCTAssertTrue(text.out.contains("socket sock:"), text.summary)
            let json = (try? String(contentsOfFile: w.m + "/.snapfs/snapshots/s-\(f).json", encoding: .utf8)) ?? ""
            XCTAssertTrue(json.contains("\"notHeld\"") && json.contains("\"socket\""), json)
        }
        let imported = w.snapfs(["import", w.s, w.root.path + "/out-canonical/export", "--label", "back"])
        XCTAssertTrue(imported.ok, imported.summary)
        let files = w.snapfs(["show", w.s, "back", "--files"])
        XCTAssertTrue(files.out.contains("\\xFF\\xFE"), files.summary)
        let events = (try? String(contentsOfFile: w.m + "/.snapfs/events", encoding: .utf8)) ?? ""
        XCTAssertTrue(events.contains("not held: 1 (sock (socket)"), events)
        let listing = w.snapfs(["show", w.s, "back", "--files"]).out
        XCTAssertTrue(listing.contains("\np ") && listing.contains("\nc "), listing)
        w.verifyClean()
    }
}
