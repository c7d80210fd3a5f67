import Foundation
import SnapStore
import XCTest

/// Names that are not UTF-8, a path beyond PATH_MAX, FIFOs and device nodes, and sockets (which no format holds),
/// through the real mount, `tar` and export.
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
            printf 'composed' > $'\\xc3\\xa9'; printf 'decomposed' > $'e\\xcc\\x81'
            mkdir $'d\\x80'; printf 'inner' > $'d\\x80/\\xef\\x9e\\xab'
            ln -s $'\\xff\\xfe' link
            mkfifo pipe
            mknod null c 1 3
            d=$(printf 'd%.0s' {1..250}); (for i in $(seq 20); do mkdir $d; cd $d; done; printf 'deep' > file)
            python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
            """)
        XCTAssertTrue(prep.ok, prep.summary)
        let formats = ["native-incremental", "native-full", "canonical"]
        for f in formats {
            // (Not w.snapshot: `cp -a` of the state, its copy for later comparison, stops at PATH_MAX.)
            let r = w.snapfs(["trigger", w.s, "--format", f, "--label", "s-\(f)"])
            XCTAssertTrue(r.ok, r.summary)
        }
        try w.mount()
        for f in formats {
            let snap = shellQuote(w.m + "/s-\(f)")
            let out = shellQuote(w.root.path + "/out-\(f)")
            let check = Command.sh("""
                set -e
                d=$(printf 'd%.0s' {1..250})
                deep() { (cd "$1"; for i in $(seq 20); do cd $d; done; cat file) }
                [ "$(LC_ALL=C ls -1 \(snap) | od -An -tx1 | tr -d ' \\n')" = "$(printf "$d\\nd\\x80\\ne\\xcc\\x81\\nlink\\nnull\\npipe\\n\\xc3\\xa9\\n\\xff\\xfe\\n" | od -An -tx1 | tr -d ' \\n')" ]
                [ "$(deep \(snap))" = deep ]
                cmp \(snap)/$'\\xff\\xfe' \(st)/$'\\xff\\xfe'
                cmp \(snap)/$'\\xc3\\xa9' \(st)/$'\\xc3\\xa9' && cmp \(snap)/$'e\\xcc\\x81' \(st)/$'e\\xcc\\x81'
                cmp \(snap)/$'d\\x80'/$'\\xef\\x9e\\xab' \(st)/$'d\\x80'/$'\\xef\\x9e\\xab'
                [ "$(readlink \(snap)/link)" = $'\\xff\\xfe' ]
                [ -p \(snap)/pipe ] && [ -c \(snap)/null ] && [ "$(stat -c %t,%T,%a \(snap)/null)" = "1,3,644" ] && [ ! -e \(snap)/sock ]
                mkdir -p \(out)/tar
                # GNU tar archives a path beyond PATH_MAX but cannot extract one (it opens it by its whole name):
                # that one is read from the archive itself.
                tar -C \(snap) -cf \(out)/t.tar . && tar -C \(out)/tar -xf \(out)/t.tar --exclude="./$d"
                [ "$(tar -xOf \(out)/t.tar "./$(printf "$d/%.0s" {1..20})file")" = deep ]
                cmp \(out)/tar/$'\\xff\\xfe' \(st)/$'\\xff\\xfe'
                cmp \(out)/tar/$'d\\x80'/$'\\xef\\x9e\\xab' \(st)/$'d\\x80'/$'\\xef\\x9e\\xab'
                [ -p \(out)/tar/pipe ] && [ "$(stat -c %t,%T \(out)/tar/null)" = "1,3" ]
                \(shellQuote(snapfsBinary)) export \(shellQuote(w.s)) s-\(f) \(out)/export
                cmp \(out)/export/files/$'\\xff\\xfe' \(st)/$'\\xff\\xfe'
                cmp \(out)/export/files/$'e\\xcc\\x81' \(st)/$'e\\xcc\\x81'
                cmp \(out)/export/files/$'d\\x80'/$'\\xef\\x9e\\xab' \(st)/$'d\\x80'/$'\\xef\\x9e\\xab'
                [ -p \(out)/export/files/pipe ] && [ "$(stat -c %t,%T \(out)/export/files/null)" = "1,3" ]
                [ "$(deep \(out)/export/files)" = deep ]
                # sha256sum opens each file by its whole path: all but the one beyond PATH_MAX are checked.
                cd \(out)/export && grep -a -v dddddddddd SHA256SUMS > short && sha256sum -c --strict short
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
        let filesJSON = w.snapfs(["show", w.s, "back", "--files", "--json"])
        let shown = try JSONSerialization.jsonObject(with: Data(filesJSON.out.utf8)) as? [String: Any]
        let bytes = (shown?["entries"] as? [[String: Any]] ?? []).compactMap { $0["pathBase64"] as? String }
            .compactMap { Data(base64Encoded: $0) }
        XCTAssertTrue(bytes.contains(Data([0xff, 0xfe])), filesJSON.summary)
        let events = (try? String(contentsOfFile: w.m + "/.snapfs/events", encoding: .utf8)) ?? ""
        XCTAssertTrue(events.contains("not held: 1 (sock (socket)"), events)
        let listing = w.snapfs(["show", w.s, "back", "--files"]).out
        XCTAssertTrue(listing.contains("\np ") && listing.contains("\nc "), listing)
        w.verifyClean()
    }
}
