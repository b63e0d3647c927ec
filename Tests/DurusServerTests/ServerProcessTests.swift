import Durus
import DurusClient
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// `durus serve` as operators run it: a separate process, killed and restarted.
@Suite(.serialized) struct ServerProcessTests {
    static var executable: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("durus").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let proc = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        return proc.deletingLastPathComponent().appendingPathComponent("durus").path
    }

    /// Starts `durus serve`; its log goes to the file `log` when given.
    static func serve(_ arguments: [String], log: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve"] + arguments
        process.standardOutput = FileHandle.nullDevice
        if let log {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process
    }

    static func connect(_ port: Int) -> ClientStorage? {
        var client: ClientStorage?
        _ = eventually(.seconds(20)) {
            client = try? ClientStorage(address: .tcp(host: "127.0.0.1", port: port), connectTimeout: .seconds(1))
            return client != nil
        }
        return client
    }

    /// Killed with SIGKILL after acknowledged commits, the server starts again
    /// at once on the same port and store; recovery runs by itself and every
    /// acknowledged commit is there. Five rounds, full durability.
    @Test func restartsAfterSIGKILL() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let port = freePort()
        let arguments = ["--db", directory.file("data"), "--port", "\(port)"]
        var acknowledged: [Record] = []
        for round in 0 ..< 5 {
            let server = try Self.serve(arguments)
            let client = try #require(Self.connect(port), "round \(round): the server did not come up")
            for record in acknowledged { #expect(try client.load(record.oid) == record, "round \(round)") }
            var batch: [Record] = []
            for index in 0 ..< 20 {
                var oid = try client.newOID()
                if oid == .root { oid = try client.newOID() }
                batch.append(record(oid, "round \(round) record \(index)"))
            }
            acknowledged = acknowledged.filter { $0.oid != .root } + batch
            let root = record(.root, "root after round \(round)", references: acknowledged.map(\.oid))
            try client.commit(batch + [root])
            acknowledged.append(root)
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let server = try Self.serve(arguments)
        defer { server.terminate(); server.waitUntilExit() }
        let client = try #require(Self.connect(port))
        for record in acknowledged { #expect(try client.load(record.oid) == record) }
    }

    /// Four clients commit at once to a full-durability server, whose commits
    /// share their flushes (group commit: a commit is applied, the next
    /// client's applied while it waits for the disk). Killed with SIGKILL
    /// in the middle of it (Berkeley DB's log buffer, not yet written, dies
    /// with the process), the server restarts with every commit that any
    /// client had been told about.
    @Test func concurrentDurableCommitsSurviveSIGKILL() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let port = freePort()
        let arguments = ["--db", directory.file("data"), "--port", "\(port)", "--durability", "full"]
        let server = try Self.serve(arguments)
        let setup = try #require(Self.connect(port))
        var heads: [OID] = []
        for _ in 0 ..< 4 {
            var oid = try setup.newOID()
            if oid == .root { oid = try setup.newOID() }
            heads.append(oid)
        }
        try setup.commit(heads.map { record($0, "head") } + [record(.root, "root", references: heads)])
        try setup.close()

        let acknowledged = Mutex<[OID: Record]>([:])
        let group = DispatchGroup()
        let killAt = ContinuousClock.now + .milliseconds(700)
        for (index, head) in heads.enumerated() {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let client = Self.connect(port) else { return }
                var mine: [OID] = []
                for round in 0... {
                    // Until the server dies: then the commit in flight fails, and that ends the loop.
                    guard let oid = try? client.newOID() else { return }
                    let item = record(oid, "client \(index) commit \(round)")
                    let list = record(head, "client \(index) after \(round)", references: mine + [oid])
                    guard (try? client.commit([item, list])) != nil else { return }
                    mine.append(oid)
                    acknowledged.withLock { $0[oid] = item }
                }
            }.start()
        }
        while ContinuousClock.now < killAt { usleep(10_000) }
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        group.wait()

        let restarted = try Self.serve(arguments)
        defer { restarted.terminate(); restarted.waitUntilExit() }
        let client = try #require(Self.connect(port))
        let expected = acknowledged.withLock { $0 }
        #expect(expected.count >= 4, "only \(expected.count) commits were acknowledged before the kill")
        for (oid, stored) in expected { #expect(try client.load(oid) == stored) }
        // A head may be newer than its last acknowledgement (applied and
        // flushed, the answer lost with the process); it names every
        // acknowledged item all the same.
        var named: Set<OID> = []
        for head in heads { named.formUnion(try client.load(head).references) }
        #expect(Set(expected.keys).isSubset(of: named))
    }

    /// SIGTERM: the server stops cleanly and closes the store (exit status 0);
    /// Python-style `Q` stops it too.
    @Test func stopsCleanlyOnSIGTERMAndQ() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let port = freePort()
        let arguments = ["--db", directory.file("data"), "--port", "\(port)", "--durability", "write-no-sync"]
        let server = try Self.serve(arguments)
        let client = try #require(Self.connect(port))
        try client.commit([record(try client.newOID(), "kept")])
        server.terminate()
        server.waitUntilExit()
        #expect(server.terminationReason == .exit && server.terminationStatus == 0)

        let again = try Self.serve(arguments)
        let second = try #require(Self.connect(port))
        #expect(try second.load(.root).data.elementsEqual("kept".utf8))
        try second.shutdownServer()
        again.waitUntilExit()
        #expect(again.terminationStatus == 0)
    }

    /// A store directory that cannot be used is a one-line error and exit
    /// status 2; so is a usage error.
    @Test func unusableStoreIsExitStatusTwo() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.file("not-a-store")
        try Data("plain file".utf8).write(to: URL(fileURLWithPath: file))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["serve", "--db", file, "--port", "\(freePort())"]
        let err = Pipe()
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 2)
        #expect(message.hasPrefix("durus: ") && message.contains("not a Durus store"))

        let usage = Process()
        usage.executableURL = URL(fileURLWithPath: Self.executable)
        usage.arguments = ["serve", "--port", "99999"]
        usage.standardError = FileHandle.nullDevice
        try usage.run()
        usage.waitUntilExit()
        #expect(usage.terminationStatus == 2)
    }
}
