import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// getfattr's and getfacl's output (a block per entry, in the directory's own order) with the blocks in name order.
/// The lines only one of two outputs has, marked `-` (only in the first) and `+` (only in the second).
private func lineDifference(_ a: String, _ b: String) -> String {
    let la = Set(a.split(separator: "\n")), lb = Set(b.split(separator: "\n"))
    return (la.subtracting(lb).map { "- \($0)" } + lb.subtracting(la).map { "+ \($0)" }).sorted().joined(separator: "\n")
}

private func sortedBlocks(_ out: String) -> String {
    out.components(separatedBy: "\n\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        .filter { !$0.isEmpty }.sorted().joined(separator: "\n\n")
}

/// A snapshot keeps the metadata its state had, as backup tools see it: `rsync -a --itemize-changes -n` from the
/// state to the mounted snapshot, to an export and to the mount of an export's import prints nothing, for every format.
final class FidelityMountTests: MountTestCase {
    static let formats = ["native-incremental", "native-full", "canonical"]

    /// Runs `script` in the state directory and fails the test if it fails.
    private func inState(_ script: String, file: StaticString = #filePath, line: UInt = #line) {
        let r = Command.sh("export TZ=UTC; cd \(shellQuote(w.state.path)) && \(script)")
        XCTAssertTrue(r.ok, r.summary, file: file, line: line)
    }

    /// A state with owners other than the daemon's, a file with three names (hard links), every kind of mode (set-id bits and none at all), nanosecond times
    /// on every entry (symlinks and the root included), a FIFO and a device node.
    private func makeOwnedState() {
        inState("""
        set -e
        printf 'owned by someone else' > owned.dat && chown 1234:5678 owned.dat && chmod 0640 owned.dat
        mkdir -p sub/deeper && chown 2000:2001 sub && chmod 0710 sub
        ln owned.dat sub/deeper/hard-link && ln owned.dat also-owned.dat
        printf 'set-id' > sub/setid && chown 3000:3001 sub/setid && chmod 6755 sub/setid
        printf 'no one' > sub/deeper/none && chmod 0000 sub/deeper/none
        ln -s owned.dat link && chown -h 4000:4001 link
        mkfifo pipe && chown 1500:1501 pipe && chmod 0620 pipe
        mknod null-dev c 1 3 && chown 1600:1601 null-dev && chmod 0604 null-dev
        touch -d '2021-03-04 05:06:07.123456789' owned.dat sub/setid
        touch -d '2020-01-02 03:04:05.987654321' sub/deeper/none pipe null-dev
        touch -h -d '2019-07-08 09:10:11.000000007' link
        touch -d '2018-02-03 04:05:06.555555555' sub/deeper sub
        """)
        inState("chown 1001:1002 . && chmod 0750 . && touch -d '2017-05-06 07:08:09.111111111' .")
    }

    /// What `rsync -n` would change to make `to` match `from`: nothing, when the two have the same entries and metadata.
    private func differences(_ from: String, _ to: String, flags: String = "-aH", file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = Command.sh("rsync \(flags) -n --itemize-changes --numeric-ids \(shellQuote(from + "/")) \(shellQuote(to + "/"))")
        XCTAssertTrue(r.ok, "rsync: \(r.summary)", file: file, line: line)
        return r.out
    }

    /// Owners, modes and nanosecond times of every entry, root included, through the mount of each format, through
    /// `snapfs export`, and through the mount of an export's import.
    func testOwnersModesAndTimesAreKeptByEveryFormatExportAndImport() throws {
        makeOwnedState()
        for f in Self.formats {
            let r = w.snapfs(["trigger", w.s, "--format", f, "--label", f])
            XCTAssertTrue(r.ok, r.summary)
            let out = w.root.path + "/export-\(f)"
            let e = w.snapfs(["export", w.s, f, out])
            XCTAssertTrue(e.ok, e.summary)
            XCTAssertEqual(differences(w.state.path, out + "/files"), "", "export of \(f)")
            let i = w.snapfs(["import", w.s, out, "--label", "imported-\(f)"])
            XCTAssertTrue(i.ok, i.summary)
        }
        // A canonical tree copied without its metadata (a plain `cp -r`) still imports with it: the manifest has it.
        let plain = w.root.path + "/plain-copy"
        XCTAssertTrue(Command.sh("cp -r \(shellQuote(w.root.path + "/export-canonical")) \(shellQuote(plain))").ok)
        XCTAssertNotEqual(differences(w.state.path, plain + "/files"), "", "a plain cp loses owners and times")
        let i = w.snapfs(["import", w.s, plain, "--label", "imported-plain"])
        XCTAssertTrue(i.ok, i.summary)
        let manifest = try String(contentsOfFile: w.root.path + "/export-canonical/MANIFEST.json", encoding: .utf8)
        XCTAssertTrue(manifest.contains("\"uid\" : 1234"), "the manifest records owners")

        try w.mount(["--allow-other"])
        for name in Self.formats + Self.formats.map({ "imported-\($0)" }) + ["imported-plain"] {
            XCTAssertEqual(differences(w.state.path, w.m + "/" + name), "", "mount of \(name)")
        }
        let shown = Command.sh("TZ=UTC stat -c '%u:%g %a %y' \(shellQuote(w.m + "/canonical/link")) \(shellQuote(w.m + "/canonical"))").out
        XCTAssertEqual(shown, "4000:4001 777 2019-07-08 09:10:11.000000007 +0000\n1001:1002 750 2017-05-06 07:08:09.111111111 +0000\n")
        // Hard links: one inode, whose link count is its names.
        for name in Self.formats + ["imported-native-full"] {
            let links = Command.sh("cd \(shellQuote(w.m + "/" + name)) && stat -c '%i %h' owned.dat also-owned.dat sub/deeper/hard-link").out
            let lines = links.split(separator: "\n")
            XCTAssertEqual(lines.count, 3, links)
            XCTAssertEqual(Set(lines).count, 1, "one inode in \(name): \(links)")
            XCTAssertTrue(lines.first?.hasSuffix(" 3") ?? false, "three names in \(name): \(links)")
        }
        XCTAssertEqual(Command.sh("stat -c %h \(shellQuote(w.root.path + "/export-canonical/files/owned.dat"))").out, "3\n")
        // Taken against a changed state, rsync does see the change: the check can fail.
        inState("chown 1235 owned.dat")
        XCTAssertEqual(differences(w.state.path, w.m + "/native-full"), ".f....o.... also-owned.dat\nhf....o.... owned.dat\nhf....o.... sub/deeper/hard-link\n")
        w.unmount()
        w.verifyClean()
    }

    /// A state whose entries carry extended attributes of every namespace root can read, and POSIX ACLs, access
    /// and default, on the root, a directory and a file.
    private func makeAttributedState() {
        inState("""
        set -e
        printf 'with attributes' > attrs.dat
        setfattr -n user.comment -v 'kept' attrs.dat
        setfattr -n user.binary -v 0x00ff10 attrs.dat
        setfattr -n trusted.origin -v 'only root reads this' attrs.dat
        printf '#!/bin/sh' > tool && chmod 0755 tool && setcap cap_net_bind_service=+ep tool
        mkdir shared && setfacl -m u:999:rwx,g:995:rx shared && setfacl -d -m u:999:r shared
        setfattr -n user.on-dir -v d shared
        printf 'acl' > shared/acl.dat && setfacl -m u:999:r shared/acl.dat
        mkfifo shared/fifo
        touch -d '2022-01-01 00:00:00.5' attrs.dat tool shared/acl.dat shared/fifo
        touch -d '2022-01-02 00:00:00.25' shared
        """)
        inState("setfacl -m u:999:rx . && setfattr -n user.on-root -v r . && touch -d '2017-05-06 07:08:09.111111111' .")
    }

    /// Extended attributes and ACLs through the mount of each format, `snapfs export` and an import: `rsync -aAX`
    /// finds nothing to change, and `getfacl` through the mount prints what it prints for the state.
    func testExtendedAttributesAndACLsAreKeptByEveryFormatExportAndImport() throws {
        makeAttributedState()
        for f in Self.formats {
            let r = w.snapfs(["trigger", w.s, "--format", f, "--label", f])
            XCTAssertTrue(r.ok, r.summary)
            let out = w.root.path + "/export-\(f)"
            XCTAssertTrue(w.snapfs(["export", w.s, f, out]).ok)
            XCTAssertEqual(differences(w.state.path, out + "/files", flags: "-aAX"), "", "export of \(f)")
            let i = w.snapfs(["import", w.s, out, "--label", "imported-\(f)"])
            XCTAssertTrue(i.ok, i.summary)
        }
        try w.mount(["--allow-other"])
        for name in Self.formats + Self.formats.map({ "imported-\($0)" }) {
            XCTAssertEqual(differences(w.state.path, w.m + "/" + name, flags: "-aAX"), "", "mount of \(name)")
        }
        let facl = { (dir: String) in sortedBlocks(Command.sh("cd \(shellQuote(dir)) && getfacl -R -p -n . 2>&1").out) }
        let stateACLs = facl(w.state.path)
        XCTAssertTrue(stateACLs.contains("default:user:999:r--"), stateACLs)
        XCTAssertEqual(facl(w.m + "/canonical"), stateACLs)
        XCTAssertEqual(Command.sh("getfattr --only-values -n user.binary \(shellQuote(w.m + "/native-full/attrs.dat")) | od -An -tx1").out, " 00 ff 10\n")
        XCTAssertEqual(Command.sh("getcap \(shellQuote(w.m + "/native-incremental/tool"))").out.contains("cap_net_bind_service=ep"), true)
        // The check can fail: an attribute the snapshot does not have is reported.
        inState("setfattr -n user.added -v late attrs.dat")
        XCTAssertEqual(differences(w.state.path, w.m + "/native-full", flags: "-aAX"), ".f........x attrs.dat\n")
        w.unmount()
        w.verifyClean()
    }

    /// Nothing SnapFS adds rides along when a mounted snapshot is copied: `rsync -aX`, `cp -a --preserve=all` and a
    /// `restic backup` + `restore` of it carry exactly the attributes the state had, and SnapFS's own metadata is
    /// still there by name on the snapshot's directory and in `.snapfs/snapshots/S.json`.
    func testACopyOfAMountedSnapshotCarriesNothingSnapFSAdded() throws {
        makeAttributedState()
        for f in Self.formats { XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", f, "--label", f]).ok) }
        try w.mount()
        // Every entry's attributes, entry by entry in name order (getfattr walks in the directory's own order).
        let dump = { (dir: String) -> String in
            sortedBlocks(Command.sh("cd \(shellQuote(dir)) && getfattr -R -h -d -m - --absolute-names . 2>&1").out)
        }
        let want = dump(w.state.path)
        XCTAssertTrue(want.contains("user.comment=\"kept\""), want)
        for f in Self.formats {
            let src = w.m + "/" + f
            XCTAssertFalse(dump(src).contains("snapfs"), "nothing of SnapFS is listed in \(f)")
            let viaRsync = w.root.path + "/rsync-\(f)"
            XCTAssertTrue(Command.sh("rsync -aAX \(shellQuote(src + "/")) \(shellQuote(viaRsync + "/"))").ok)
            XCTAssertEqual(dump(viaRsync), want, "rsync -aAX of \(f)")
            let viaCp = w.root.path + "/cp-\(f)"
            let cp = Command.sh("cp -a --preserve=all \(shellQuote(src)) \(shellQuote(viaCp))")
            XCTAssertTrue(cp.ok, cp.summary)
            XCTAssertEqual(dump(viaCp), want, "cp -a --preserve=all of \(f)")
            XCTAssertEqual(Command.sh("getfattr --only-values -n user.snapfs.format \(shellQuote(src))").out, f)
        }
        let report = try String(contentsOfFile: w.m + "/.snapfs/snapshots/canonical.json", encoding: .utf8)
        XCTAssertTrue(report.contains("\"format\" : \"canonical\""), report)
        let haveRestic = Command.sh("command -v restic").ok
        XCTAssertTrue(haveRestic, "restic is missing (Scripts/install-deps installs it): the restic round trip is part of this check")
        if haveRestic {
            let repo = w.root.path + "/restic-repo", back = w.root.path + "/restic-restored"
            let env = "export RESTIC_PASSWORD=fidelity RESTIC_REPOSITORY=\(shellQuote(repo)) RESTIC_CACHE_DIR=\(shellQuote(w.root.path + "/restic-cache"));"
            let r = Command.sh(env + " restic init -q && cd \(shellQuote(w.m + "/native-full")) && restic backup -q . && restic restore -q latest --target \(shellQuote(back))",
                               timeout: 300)
            XCTAssertTrue(r.ok, r.summary)
            let restored = dump(back)
            XCTAssertFalse(restored.contains("snapfs"), restored)
            XCTAssertTrue(restored.contains("user.comment=\"kept\""), restored)
        }
        w.unmount()
        w.verifyClean()
    }

    /// The check: a state with all of the above, names that are not UTF-8 and a path of 4,100 bytes. rsync finds
    /// nothing to change in each format's mount, nor in what `tar -xp` makes of the mount; neither rsync nor
    /// `tar -x` can take a path longer than 4,096 bytes (each refuses it on plain directories too), so for that one
    /// the check is `find` (type, mode, owner, links, time, size of every entry) and the listing of a `tar -c`
    /// archive (owners, modes, nanosecond times, links) of the mount against the state's. Outputs go through
    /// `cat -v`, as names that are not UTF-8 are bytes no Swift string holds. With `default_permissions`, a second
    /// user reads and lists through the mount exactly what the state let them, ACLs included.
    func testTheCheckRsyncTarAndASecondUserSeeTheState() throws {
        try XCTSkipIf(getuid() != 0, "owners, devices and a second user need root")
        makeOwnedState()
        makeAttributedState()
        inState("""
        set -e
        printf 'latin-1' > "$(printf 'caf\\351')" && mkdir "$(printf '\\377\\376-dir')" && printf x > "$(printf '\\377\\376-dir/\\200')"
        mkdir long && cd long && for i in $(seq 1 20); do d=$(printf "%0200d" $i); mkdir $d && cd $d; done
        printf 'at the end of a long path' > $(printf 'f%.0s' $(seq 1 80))
        """)
        inState("setfacl -m u:999:rx . && touch -d '2017-05-06 07:08:09.111111111' long .")
        let longFile = Command.sh("cd \(shellQuote(w.state.path)) && find long -type f -printf '%p'").out
        XCTAssertGreaterThan(longFile.utf8.count, 4100)
        for f in Self.formats { XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", f, "--label", f]).ok) }
        try w.mount(["--allow-other"])
        let listing = { (dir: String) in
            // A directory's size is its file system's business (4096 on ext4), not part of what a snapshot keeps.
            Command.sh("cd \(shellQuote(dir)) && find . \\( -type d -printf '%y %m %U %G %n %T@ - %P\\n' \\) -o -printf '%y %m %U %G %n %T@ %s %P\\n' | LC_ALL=C sort | cat -v").out
        }
        let archived = { (dir: String) in
            Command.sh("tar -C \(shellQuote(dir)) --sort=name --format=posix --xattrs --xattrs-include='*' --acls -cf - . | tar -tvf - --full-time --numeric-owner | LC_ALL=C sort | cat -v").out
        }
        let want = listing(w.state.path), wantArchive = archived(w.state.path)
        XCTAssertTrue(want.contains(String(longFile.dropFirst("long/".count))), "find lists the long path")
        XCTAssertTrue(want.contains("caf"), want)
        XCTAssertTrue(wantArchive.contains(longFile) && wantArchive.contains("2021-03-04 05:06:07.123456789"), wantArchive)
        for f in Self.formats {
            let S = w.m + "/" + f
            XCTAssertEqual(differences(w.state.path, S, flags: "-aHAX --exclude=/long"), "", "rsync, \(f)")
            XCTAssertEqual(lineDifference(listing(S), want), "", "find, \(f)")
            XCTAssertEqual(lineDifference(archived(S), wantArchive), "", "tar -c, \(f)")
            let untarred = w.root.path + "/untar-\(f)"
            let tar = Command.sh("mkdir \(shellQuote(untarred)) && tar -C \(shellQuote(S)) --xattrs --xattrs-include='*' --acls --exclude=./long -cf - . | tar -C \(shellQuote(untarred)) --xattrs --xattrs-include='*' --acls --numeric-owner -xpf -")
            XCTAssertTrue(tar.ok, tar.summary)
            XCTAssertEqual(differences(w.state.path, untarred, flags: "-aHAX --exclude=/long"), "", "tar -xp, \(f)")
            let deep = Command.sh("cd \(shellQuote(S)) && p=\(shellQuote(longFile)) && IFS=/ && for c in $p; do [ -d \"$c\" ] && cd \"$c\" || cat \"$c\"; done")
            XCTAssertEqual(deep.out, "at the end of a long path", deep.summary)
        }
        // A second user: what each entry lets them do in the state, it lets them do in each snapshot. The names
        // are listed by root, so entries the second user cannot reach are tried too.
        let list = w.root.path + "/entries"
        XCTAssertTrue(Command.sh("cd \(shellQuote(w.state.path)) && find . -not -type p -not -type c -not -path './long/*' -print0 | LC_ALL=C sort -z > \(shellQuote(list)) && chmod 0644 \(shellQuote(list))").ok)
        func access(_ base: String) -> String {
            let script = """
            cd \(shellQuote(base)) || exit 1
            while IFS= read -r -d '' p; do
              if [ -d "$p" ]; then ls "$p" >/dev/null 2>&1 && echo "list $p" || echo "no-list $p"
              else cat "$p" >/dev/null 2>&1 && echo "read $p" || echo "no-read $p"; fi
            done < \(shellQuote(list)) | cat -v
            """
            return Command.run("/usr/bin/setpriv", ["--reuid=snapfs-test", "--regid=snapfs-test", "--clear-groups", "--", "/bin/bash", "-c", script]).out
        }
        let allowed = access(w.state.path)
        XCTAssertTrue(allowed.contains("list ./shared\n") && allowed.contains("read ./shared/acl.dat\n"), "ACLs let the second user in: \(allowed)")
        XCTAssertTrue(allowed.contains("no-read ./owned.dat\n") && allowed.contains("no-list ./sub\n"), allowed)
        for f in Self.formats { XCTAssertEqual(access(w.m + "/" + f), allowed, "second user in \(f)") }
        w.unmount()
        w.verifyClean()
    }

    /// Holes: a sparse state file is stored sparse in each format and in an export, `st_blocks` through the mount is
    /// the state's, SEEK_DATA / SEEK_HOLE through the mount find the state's extents, and `cp --sparse=auto` of the
    /// mounted file makes a sparse copy with the same bytes.
    func testHolesAreStoredSparseAndSeekableThroughTheMount() throws {
        inState("""
        set -e
        truncate -s 256M sparse
        head -c 4096 /dev/urandom | dd of=sparse bs=4096 seek=0 conv=notrunc status=none
        head -c 12288 /dev/urandom | dd of=sparse bs=4096 seek=32768 conv=notrunc status=none
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
        let blocks = { (file: String) in Command.sh("stat -c %b \(shellQuote(file))").out }
        let state = w.state.path + "/sparse"
        XCTAssertEqual(extents(state), "0-4096 134217728-134230016\n")
        for f in Self.formats {
            let before = Int(Command.sh("du -sk \(shellQuote(w.s)) | cut -f1").out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", f, "--label", f]).ok)
            let after = Int(Command.sh("du -sk \(shellQuote(w.s)) | cut -f1").out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            XCTAssertLessThan(after - before, 1024, "a snapshot of 256 MiB holding 16 KiB takes less than 1 MiB of store (\(f))")
            let out = w.root.path + "/export-\(f)"
            XCTAssertTrue(w.snapfs(["export", w.s, f, out]).ok)
            XCTAssertEqual(blocks(out + "/files/sparse"), blocks(state), "export of \(f) is sparse")
        }
        try w.mount()
        for f in Self.formats {
            let mounted = w.m + "/" + f + "/sparse"
            XCTAssertEqual(blocks(mounted), blocks(state), "st_blocks, \(f)")
            XCTAssertEqual(extents(mounted), extents(state), "SEEK_DATA/SEEK_HOLE, \(f)")
            let copy = w.root.path + "/cp-\(f)"
            XCTAssertTrue(Command.sh("cp --sparse=auto \(shellQuote(mounted)) \(shellQuote(copy))").ok)
            XCTAssertEqual(blocks(copy), blocks(state), "cp --sparse=auto through the mount, \(f)")
            XCTAssertTrue(Command.sh("cmp \(shellQuote(state)) \(shellQuote(copy))").ok)
        }
        w.unmount()
        w.verifyClean()
    }

    /// An unchanged file chowned between two native-incremental snapshots is one stored object, but each snapshot
    /// shows the owner it recorded (an inode each, as the kernel keeps one set of attributes per inode); a file
    /// untouched in between is one inode in both.
    func testAFileChownedBetweenSnapshotsShowsEachSnapshotsOwner() throws {
        inState("printf one > chowned && printf two > untouched && touch -d '2020-01-01 00:00:00.5' chowned untouched")
        XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", "native-incremental", "--label", "one"]).ok)
        inState("chown 1234:5678 chowned && chmod 0600 chowned")
        XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", "native-incremental", "--label", "two"]).ok)
        try w.mount()
        let shown = Command.sh("cd \(shellQuote(w.m)) && stat -c '%u:%g %a %i' one/chowned two/chowned one/untouched two/untouched").out
        let lines = shown.split(separator: "\n").map { $0.split(separator: " ") }
        XCTAssertEqual(lines.count, 4, shown)
        XCTAssertEqual(lines.map { "\($0[0]) \($0[1])" }, ["0:0 644", "1234:5678 600", "0:0 644", "0:0 644"], shown)
        XCTAssertNotEqual(lines[0][2], lines[1][2], "a chowned file is an inode of its own")
        XCTAssertEqual(lines[2][2], lines[3][2], "an untouched file is one inode in both")
        XCTAssertEqual(differences(w.state.path, w.m + "/two"), "")
        w.unmount()
        w.verifyClean()
    }
}
