import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Runs `script` in the state directory and fails the test if it fails.
private func inState(_ w: MountWorkspace, _ script: String, file: StaticString = #filePath, line: UInt = #line) {
    let r = Command.sh("export TZ=UTC; cd \(shellQuote(w.state.path)) && \(script)")
    XCTAssertTrue(r.ok, r.summary, file: file, line: line)
}

/// What `rsync -n` would change to make `to` match `from` (hard links, ACLs and attributes included): nothing when
/// the two trees are the same.
private func differences(_ from: String, _ to: String, file: StaticString = #filePath, line: UInt = #line) -> String {
    let r = Command.sh("rsync -aHAXn --itemize-changes --numeric-ids \(shellQuote(from + "/")) \(shellQuote(to + "/"))")
    XCTAssertTrue(r.ok, "rsync: \(r.summary)", file: file, line: line)
    return r.out
}

/// Inode numbers and link counts through the mount: an inode is a file, never merely equal content. A file held
/// unchanged by several snapshots is one inode whose `st_nlink` counts the snapshots (SPEC §4); a file's hard links
/// are that inode's names, counted in every snapshot holding them; two files with the same bytes are two inodes,
/// also when they were one file (hard links) in the snapshot a native-incremental one reuses. So `tar` of a
/// mounted snapshot and `tar -xp` of that archive make exactly the state's links, and `du` counts shared bytes once.
final class LinkCountMountTests: MountTestCase {
    /// `stat -c '%h %i'` of each path below the mount, as (links, inode).
    private func links(_ paths: [String], file: StaticString = #filePath, line: UInt = #line) -> [(links: Int, inode: String)] {
        let r = Command.sh("cd \(shellQuote(w.m)) && stat -c '%h %i' " + paths.map(shellQuote).joined(separator: " "))
        XCTAssertTrue(r.ok, r.summary, file: file, line: line)
        return r.out.split(separator: "\n").map { l in
            let p = l.split(separator: " ")
            return (Int(p[0]) ?? -1, String(p[1]))
        }
    }

    /// `tar` of the mounted snapshot, extracted with `-p`, against the state it was taken of: rsync sees nothing to change.
    private func checkTarRoundTrip(_ snapshot: String, against state: String, file: StaticString = #filePath, line: UInt = #line) {
        let restored = w.root.path + "/restored-" + snapshot
        let tar = Command.sh("mkdir \(shellQuote(restored)) && tar -C \(shellQuote(w.m + "/" + snapshot)) --xattrs --xattrs-include='*' --acls -cf - . | tar -C \(shellQuote(restored)) --xattrs --xattrs-include='*' --acls --numeric-owner -xpf -")
        XCTAssertTrue(tar.ok, tar.summary, file: file, line: line)
        XCTAssertEqual(differences(state, restored, file: file, line: line), "", "tar of \(snapshot) and tar -xp", file: file, line: line)
    }

    func testLinkCountsAndInodesFollowFilesNotContent() throws {
        inState(w, """
        set -e
        head -c 1048576 /dev/urandom > kept
        printf 'linked' > a && ln a a-link
        printf 'same bytes' > same-1 && printf 'same bytes' > same-2
        printf 'split' > split-1 && ln split-1 split-2
        touch -d '2022-02-02 02:02:02.5' kept a same-1 same-2 split-1
        """)
        XCTAssertTrue(try w.snapshot("one").ok)
        // The link between split-1 and split-2 is broken, the length and time kept: the two are separate files now,
        // and each looks unchanged to a native-incremental snapshot.
        inState(w, "cp -p split-2 split-2.new && mv split-2.new split-2 && touch -d '2022-02-02 02:02:02.5' . ")
        XCTAssertEqual(Command.sh("stat -c %h \(shellQuote(w.state.path + "/split-1"))").out, "1\n")
        let stateTwo = w.root.path + "/state-two"
        XCTAssertTrue(Command.sh("cp -a \(shellQuote(w.state.path)) \(shellQuote(stateTwo))").ok)
        XCTAssertTrue(try w.snapshot("two").ok)
        inState(w, "printf 'fresh' > fresh && ln fresh fresh-link")
        XCTAssertTrue(try w.snapshot("three").ok)
        try w.mount()

        let kept = links(["one/kept", "two/kept", "three/kept"])
        XCTAssertEqual(Set(kept.map(\.inode)).count, 1, "an unchanged file is one inode in every snapshot: \(kept)")
        XCTAssertEqual(kept.map(\.links), [3, 3, 3], "its st_nlink is the number of snapshots holding it")

        let linked = links(["one/a", "one/a-link", "two/a", "three/a", "three/a-link"])
        XCTAssertEqual(Set(linked.map(\.inode)).count, 1, "hard links are one inode, in every snapshot holding them: \(linked)")
        XCTAssertEqual(linked.map(\.links), Array(repeating: 6, count: 5), "two names in each of three snapshots")

        let fresh = links(["three/fresh", "three/fresh-link"])
        XCTAssertEqual(fresh[0].inode, fresh[1].inode)
        XCTAssertEqual(fresh.map(\.links), [2, 2], "hard links in one snapshot: st_nlink counts the names in it")

        let same = links(["one/same-1", "one/same-2", "three/same-1", "three/same-2"])
        XCTAssertNotEqual(same[0].inode, same[1].inode, "two files with the same bytes are two inodes: \(same)")
        XCTAssertEqual(same[0].inode, same[2].inode)
        XCTAssertEqual(same[1].inode, same[3].inode)
        XCTAssertEqual(same.map(\.links), [3, 3, 3, 3])

        let split = links(["one/split-1", "one/split-2", "two/split-1", "two/split-2"])
        XCTAssertEqual(split[0].inode, split[1].inode, "hard links in one: \(split)")
        XCTAssertNotEqual(split[2].inode, split[3].inode, "a link broken before two is two files in two: \(split)")

        checkTarRoundTrip("two", against: stateTwo)
        checkTarRoundTrip("three", against: w.state.path)
        XCTAssertEqual(differences(w.state.path, w.m + "/three"), "")

        // du counts each inode once: the MiB of `kept` once for the three snapshots, not three times.
        let du = Command.sh("du -scb \(shellQuote(w.m + "/one")) \(shellQuote(w.m + "/two")) \(shellQuote(w.m + "/three")) | tail -n 1 | cut -f1")
        let total = Int(du.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        XCTAssertGreaterThanOrEqual(total, 1_048_576, du.summary)
        XCTAssertLessThan(total, 2 * 1_048_576, "du -b of the three snapshots counts the shared MiB once: \(total)")
        w.unmount()
        w.verifyClean()
    }
}

/// An 8 GiB file holding 10 KiB: each native format stores it in less than a MiB (its data, not its length, is read,
/// written and checksummed), a second native-incremental snapshot reuses its object, and through the mount it reads
/// back identical with its holes; its SHA-256, never computed by the snapshots, is computed when `getfattr` asks,
/// equals `sha256sum`'s of the mounted file and of the state's, and is recorded once computed.
final class LargeSparseMountTests: MountTestCase {
    func testAnEightGiBSparseFileIsStoredByItsDataAndChecksummedOnDemand() throws {
        inState(w, """
        set -e
        truncate -s 8G big
        head -c 4096 /dev/urandom | dd of=big bs=4096 seek=0 conv=notrunc status=none
        head -c 6144 /dev/urandom | dd of=big bs=1024 seek=5242880 conv=notrunc status=none
        """)
        let extents = { (file: String) in
            Command.run("/usr/bin/python3", ["-c", """
            import os, sys
            fd = os.open(sys.argv[1], os.O_RDONLY); out = []; pos = 0
            while True:
                try: d = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError: break
                h = os.lseek(fd, d, os.SEEK_HOLE); out.append(f"{d}-{h}"); pos = h
            print(" ".join(out))
            """, file]).out
        }
        let state = w.state.path + "/big"
        let storeKiB = { Int(Command.sh("du -sk \(shellQuote(self.w.s)) | cut -f1").out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        for (name, format) in [("inc-1", "native-incremental"), ("inc-2", "native-incremental"), ("full", "native-full")] {
            let before = storeKiB()
            XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", format, "--label", name], timeout: 600).ok)
            let grew = storeKiB() - before
            XCTAssertLessThanOrEqual(grew, 1024, "\(name) (\(format)) of 8 GiB holding 10 KiB grew the store by \(grew) KiB")
        }
        let want = Command.sh("sha256sum \(shellQuote(state)) | cut -d' ' -f1", timeout: 600).out
        XCTAssertEqual(want.count, 65)
        try w.mount()
        let objects = ["inc-1", "inc-2", "full"].map {
            Command.sh("getfattr --only-values -n user.snapfs.object \(shellQuote(w.m + "/" + $0 + "/big"))").out
        }
        XCTAssertFalse(objects[0].isEmpty)
        XCTAssertEqual(objects[0], objects[1], "the unchanged file is reused by the second native-incremental snapshot")
        XCTAssertNotEqual(objects[0], objects[2], "native-full stores its own copy")
        for name in ["inc-1", "full"] {
            let mounted = w.m + "/" + name + "/big"
            XCTAssertEqual(Command.sh("stat -c '%s %b' \(shellQuote(mounted))").out, Command.sh("stat -c '%s %b' \(shellQuote(state))").out, name)
            XCTAssertEqual(extents(mounted), extents(state), "SEEK_DATA/SEEK_HOLE, \(name)")
            // Reading 8 GiB through the mount is the slow part of this test: once, for the first snapshot.
            if name == "inc-1" {
                XCTAssertEqual(Command.sh("sha256sum \(shellQuote(mounted)) | cut -d' ' -f1", timeout: 1200).out, want, "the bytes read back, \(name)")
            }
            let attr = Command.sh("getfattr --only-values -n user.snapfs.sha256 \(shellQuote(mounted))", timeout: 600)
            XCTAssertEqual(attr.out + "\n", want, "user.snapfs.sha256, \(name): \(attr.summary)")
        }
        w.unmount()
        // Computed once, then recorded: the catalog answers from now on (and an export's SHA256SUMS has it).
        let shown = w.snapfs(["show", w.s, "inc-2", "--files", "--json"])
        XCTAssertTrue(shown.ok, shown.summary)
        XCTAssertTrue(shown.out.contains(want.trimmingCharacters(in: .whitespacesAndNewlines)), "the SHA-256 computed for inc-1 is recorded for the object inc-2 shares")
        let out = w.root.path + "/export"
        XCTAssertTrue(w.snapfs(["export", w.s, "full", out], timeout: 600).ok)
        XCTAssertEqual(Command.sh("grep big \(shellQuote(out + "/SHA256SUMS")) | cut -d' ' -f1").out, want)
        XCTAssertEqual(extents(out + "/files/big"), extents(state), "the export is sparse")
        w.verifyClean()
    }
}
