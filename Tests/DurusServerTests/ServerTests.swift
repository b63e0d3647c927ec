import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import DurusTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@Suite struct ServerTests {
    /// Every command through ClientStorage against the Swift server.
    @Test func clientStorageSpeaksEveryCommand() throws {
        let server = try startServer()
        defer { server.stop() }
        let alice = try server.client(), bob = try server.client()
        let root = try alice.newOID()
        #expect(root == .root)
        let child = try alice.newOID()
        try alice.commit([record(root, "root", references: [child]), record(child, "child")])
        #expect(throws: ConflictError.self) { try bob.load(child) }   // news to Bob until he syncs
        #expect(Set(try bob.sync()) == [root, child])
        #expect(try bob.load(child) == record(child, "child"))
        #expect(try bob.bulkLoad([root, child]).map(\.oid) == [root, child])
        #expect(throws: DurusError.keyNotFound(OID(999))) { try bob.load(OID(999)) }

        // Bob read child; Alice changes it: Bob's next load is a read conflict until he syncs.
        try alice.commit([record(child, "child 2")])
        #expect(throws: ConflictError(.read, oids: [child])) { try bob.load(child) }
        #expect(throws: ConflictError.self) { try bob.bulkLoad([root, child]) }
        #expect(try bob.sync() == [child])
        #expect(try bob.load(child).data.elementsEqual("child 2".utf8))
        // Bob commits: Alice learns of it at her commit exchange.
        try bob.commit([record(root, "root 2", references: [child])])
        var told: [OID] = []
        try alice.commit([record(child, "child 3")]) { told = $0 }
        #expect(told == [root])
        try alice.pack()
        #expect(try alice.sync().isEmpty)

        // OIDs come in batches of 32: many newOID calls, all distinct, never reused.
        let oids = try (0 ..< 100).map { _ in try bob.newOID() }
        #expect(Set(oids).count == 100 && !oids.contains(root) && !oids.contains(child))
        try alice.close()
        #expect(throws: DurusError.closed) { try alice.load(root) }
        _ = try bob.load(root)
    }

    /// A Database over ClientStorage: Swift objects, two clients of one
    /// server incrementing a counter with retries; no increment is lost.
    @Test func databasesOverTheServerRetryConflicts() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }
        let databases = try (0 ..< 2).map { _ in try Database(storage: server.client(), root: Ledger.self, types: [Entry.self]) }
        try databases[0].transaction { try $0.root(Ledger.self).entries = [Entry(label: "counter", amount: 0)] }
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for _ in 0 ..< 25 {
                try! databases[worker % 2].transaction(retries: 1000) { connection in
                    try connection.root(Ledger.self).entries[0].amount += 1
                }
            }
        }
        let final = try databases[1].transaction { try $0.root(Ledger.self).entries[0].amount }
        #expect(final == 100)
        #expect(try storage.verify().isClean)
    }

    /// While one client holds the commit exchange open (sent C, not yet its
    /// data), other clients' loads are answered, and another client's commit
    /// waits for the exchange and then succeeds.
    @Test func loadsAreAnsweredDuringAnotherClientsCommitExchange() throws {
        let server = try startServer()
        defer { server.stop() }
        let setup = try server.client()
        let root = try setup.newOID()
        try setup.commit([record(root, "root")])

        let holder = try RawClient(port: server.port)
        #expect(holder.hello() == 1)
        #expect(holder.beginCommit() == [])            // the exchange is the holder's now
        let reader = try server.client()
        for _ in 0 ..< 100 { #expect(try reader.load(root).oid == root) }

        let committed = Counter()
        let writer = try server.client()
        let waiting = Thread {
            try? writer.commit([record(root, "root 2")])
            committed.add()
        }
        waiting.start()
        usleep(300_000)
        #expect(committed.value == 0)                   // serialized behind the holder
        #expect(try reader.load(root).data.elementsEqual("root".utf8))
        holder.send([0, 0, 0, 0])                       // the holder commits nothing: exchange ends
        #expect(eventually { committed.value == 1 })
        _ = try reader.sync()
        #expect(try reader.load(root).data.elementsEqual("root 2".utf8))
    }

    /// A Unix socket: served with the mode asked for; a stale socket file
    /// left by a dead server is replaced; a live server's socket, or a file
    /// that is not a socket, is refused and left alone.
    @Test func unixSocketsAndStaleFiles() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sock")
        let server = try startServer { configuration in
            configuration.address = .unix(path: path)
            configuration.unixSocketMode = 0o600
        }
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let client = try ClientStorage(address: .unix(path: path))
        try client.commit([record(try client.newOID(), "over unix")])
        #expect(throws: DurusError.self) { try startServer { $0.address = .unix(path: path) } }
        #expect(try client.load(.root).data.elementsEqual("over unix".utf8))
        server.stop()
        #expect(!FileManager.default.fileExists(atPath: path))

        /// A socket bound at `path`.
        func bound(_ path: String) -> Int32 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            return fd
        }

        // A socket file with nobody listening (a killed server's).
        close(bound(path))
        #expect(FileManager.default.fileExists(atPath: path))
        let again = try startServer { $0.address = .unix(path: path) }
        _ = try ClientStorage(address: .unix(path: path)).newOID()
        again.stop()

        // A socket another program listens on, speaking no Durus: refused and left alone.
        let other = directory.file("other.sock")
        let listener = bound(other)
        defer { close(listener) }
        #expect(listen(listener, 1) == 0)
        #expect(throws: DurusError.self) { try startServer { $0.address = .unix(path: other) } }
        #expect(FileManager.default.fileExists(atPath: other))

        let plain = directory.file("plain")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: plain))
        #expect(throws: DurusError.self) { try startServer { $0.address = .unix(path: plain) } }
        #expect(try String(contentsOfFile: plain, encoding: .utf8) == "keep me")
    }

    /// Q: refused (and the client dropped) for TCP clients under
    /// `.unixSocketOnly`; honoured over the Unix socket, stopping the server.
    @Test func quitPolicy() throws {
        let server = try startServer { $0.quitPolicy = .unixSocketOnly }
        let raw = try RawClient(port: server.port)
        raw.send([0x51])
        #expect(raw.isClosedByServer())
        _ = try server.client().newOID()               // still serving
        server.stop()

        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let unix = try startServer {
            $0.address = .unix(path: directory.file("q.sock"))
            $0.quitPolicy = .unixSocketOnly
        }
        try ClientStorage(address: unix.address).shutdownServer()
        unix.waitUntilStopped()
        #expect(throws: DurusError.self) { try ClientStorage(address: unix.address, connectTimeout: .seconds(1)) }
    }

    /// P starts a pack in the background and answers at once, also on an
    /// empty store; the garbage it collects reaches clients through sync.
    @Test func packInTheBackground() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }
        let client = try server.client()
        try client.pack()                               // empty store
        let root = try client.newOID(), a = try client.newOID(), b = try client.newOID()
        try client.commit([record(root, "r", references: [a]), record(a, "a", references: [b]), record(b, "b")])
        try client.commit([record(root, "r")])          // a and b are garbage now
        try client.pack()
        #expect(eventually { storage.objectCount == 1 })
        #expect(eventually { Set((try? client.sync()) ?? []).isSuperset(of: [a, b]) })
        #expect(throws: DurusError.keyNotFound(a)) { try client.load(a) }
    }

    /// A sync answer far larger than the socket's buffers (60,000 new
    /// objects' OIDs, 480 KB) arrives exactly once and the next answer
    /// follows it. (The answer used to be written twice: the write turned
    /// the channel writable again, which flushed the same buffer from inside.)
    @Test func largeAnswersAreWrittenOnce() throws {
        let server = try startServer()
        defer { server.stop() }
        let writer = try server.client()
        let raw = try RawClient(port: server.port)
        #expect(raw.hello() == 1)
        let reader = try server.client()
        let oids = try (0 ..< 60_000).map { _ in try writer.newOID() }
        try writer.commit(oids.map { record($0, "x") })
        raw.send([UInt8(ascii: "S")])
        #expect(raw.read(4) == bigEndian(60_000))
        let body = try #require(raw.read(8 * 60_000))
        #expect(Set(stride(from: 0, to: body.count, by: 8).map { OID(bytes: body[$0 ..< $0 + 8])! }) == Set(oids))
        raw.send([UInt8(ascii: "L")] + oids[7].bytes)
        #expect(raw.read(1) == [WireProtocol.Status.okay.rawValue])
        #expect(Set(try reader.sync()) == Set(oids))
        #expect(Array(try reader.load(oids[7]).data) == Array("x".utf8))
    }

    /// Durus's `gcbytes`: once `packAfterBytes` have been committed the
    /// server packs by itself; a garbage cycle (which counting alone never
    /// frees) goes, and a client's sync names its members.
    @Test func packsAfterTheConfiguredBytes() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        let server = try startServer(storage: storage) { $0.packAfterBytes = 20_000 }
        defer { server.stop(); try? storage.close() }
        let client = try server.client()
        let root = try client.newOID(), a = try client.newOID(), b = try client.newOID(), filler = try client.newOID()
        try client.commit([record(root, "r", references: [a]), record(a, "a", references: [b]), record(b, "b", references: [a])])
        try client.commit([record(root, "r")])                  // a ⇄ b: a cycle nothing reaches
        Thread.sleep(forTimeInterval: 0.3)
        #expect(storage.objectCount == 3, "no pack yet: the cycle stays")
        // What the client hears of others' commits and of collected objects
        // comes with its next commit or sync, whichever is first.
        var synced: Set<OID> = []
        for round in 0 ..< 5 {                                  // 5 × 5,000 bytes: over the limit
            try client.commit([record(filler, String(repeating: "\(round)", count: 5_000)), record(root, "r", references: [filler])]) {
                synced.formUnion($0)
            }
        }
        #expect(eventually { storage.objectCount == 2 }, "the cycle is collected by the automatic pack")
        #expect(eventually {
            synced.formUnion((try? client.sync()) ?? [])
            return synced.isSuperset(of: [a, b])
        })
        #expect(try storage.lastCycleCollection()?.collected == 2)
    }

    /// A client that never syncs while others commit is dropped once its
    /// pending invalidations pass the limit; the committer is unaffected.
    @Test func idleClientOverTheInvalidationLimitIsDropped() throws {
        let server = try startServer { $0.invalidationLimit = 50 }
        defer { server.stop() }
        let idle = try RawClient(port: server.port)
        #expect(idle.hello() == 1)
        let busy = try server.client()
        let oids = try (0 ..< 60).map { _ in try busy.newOID() }
        for oid in oids { try busy.commit([record(oid, "x")]) }
        #expect(idle.isClosedByServer())
        _ = try busy.load(oids[0])
    }

    /// The server logs connections, commits (objects and bytes) and drops (with the reason).
    @Test func structuredLogs() throws {
        let lines = LogLines()
        var logger = Logger(label: "test") { _ in LogLines.Handler(sink: lines) }
        logger.logLevel = .info
        let server = try DurusServer(storage: MemoryStorage(), configuration: .init(address: .tcp(host: "127.0.0.1", port: 0)), logger: logger)
        let client = try server.client()
        try client.commit([record(try client.newOID(), "hello")])
        let bad = try RawClient(port: server.port)
        bad.send([0x5A])
        #expect(bad.isClosedByServer())
        try client.close()
        server.stop()
        let all = lines.all
        #expect(all.contains { $0.message == "client connected" })
        #expect(all.contains { $0.message == "commit" && $0.metadata["objects"] == "1" && $0.metadata["bytes"] == "\(12 + 12 + 5)" })
        #expect(all.contains { $0.message == "dropping client" && ($0.metadata["reason"] ?? "").contains("unknown command byte 90") })
        #expect(all.contains { $0.message == "client disconnected" })
    }
}

/// Collects log entries for the tests that check them.
final class LogLines: Sendable {
    struct Line: Sendable { var level: Logger.Level; var message: String; var metadata: [String: String] }
    private let lines = Mutex<[Line]>([])

    var all: [Line] { lines.withLock { $0 } }

    struct Handler: LogHandler {
        let sink: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            all.merge(event.metadata ?? [:]) { $1 }
            let line = Line(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" })
            sink.lines.withLock { $0.append(line) }
        }
    }
}
