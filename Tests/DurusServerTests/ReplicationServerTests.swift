import Durus
import DurusClient
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// Three `durus serve --replication` sites in processes of their own on
/// loopback ports, used by unmodified Python Durus 4.3 clients.
@Suite(.serialized) struct ReplicationServerTests {
    /// A group of three sites; site 0 starts first and creates the group.
    struct Group {
        let directory = TemporaryDirectory("replication-server")
        let ports = [freePort(), freePort(), freePort()]
        let replicationPorts = [freePort(), freePort(), freePort()]
        var servers: [Process?] = [nil, nil, nil]

        func address(_ site: Int) -> String { "127.0.0.1:\(ports[site])" }
        func log(_ site: Int) -> String { directory.file("site\(site).log") }

        mutating func start(_ site: Int) throws {
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
            var arguments = ["--db", directory.file("site\(site)"), "--port", "\(ports[site])",
                             "--durability", "write-no-sync", "--log-level", "info",
                             "--replication", "127.0.0.1:\(replicationPorts[site])"]
            for other in 0 ..< 3 where other != site { arguments += ["--peer", "127.0.0.1:\(replicationPorts[other])"] }
            servers[site] = try ServerProcessTests.serve(arguments, log: log(site))
            #expect(ServerProcessTests.connect(ports[site]) != nil, "site \(site) did not come up")
        }

        mutating func startAll() throws {
            for site in 0 ..< 3 { try start(site) }
        }

        mutating func kill(_ site: Int) {
            guard let server = servers[site] else { return }
            Foundation.kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
            servers[site] = nil
        }

        mutating func stop() {
            for site in 0 ..< 3 {
                guard let server = servers[site] else { continue }
                server.terminate()
                server.waitUntilExit()
                servers[site] = nil
            }
            directory.remove()
        }

        /// Every record reachable from the root at `site`, by OID.
        func records(at site: Int) throws -> [OID: Record] {
            let client = try ClientStorage(address: .tcp(host: "127.0.0.1", port: ports[site]))
            defer { try? client.close() }
            while true {
                // Commits arriving meanwhile make loads stale: sync and read again.
                _ = try client.sync()
                var records: [OID: Record] = [:]
                do {
                    try client.forEachRecord { records[$0.oid] = $0 }
                    return records
                } catch is ConflictError {
                    continue
                }
            }
        }
    }

    /// A Python client commits at a replica and reads its write back there at
    /// once; a Python client at the other replica sees the change at its next
    /// sync; loads of every reachable object are byte-identical on all sites.
    @Test func pythonClientsAtReplicasReadTheirWritesAndSeeInvalidations() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        // A first commit through a replica creates the root.
        #expect(try PythonDurus.run("replication.py", [group.address(1), "write", "greeting", "hello"]).contains("read hello"))

        let stdin = Pipe()
        let (watcher, out, err) = try PythonDurus.start("replication.py", [group.address(2), "watch", "greeting"], stdin: stdin)
        var early = Data()
        while !String(decoding: early, as: UTF8.self).contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            early.append(chunk)
        }
        #expect(String(decoding: early, as: UTF8.self).contains("before hello"))

        for round in 0 ..< 5 {
            let written = try PythonDurus.run("replication.py", [group.address(1), "write", "greeting", "hello \(round)"])
            #expect(written.contains("read hello \(round)"), "\(written)")
        }
        stdin.fileHandleForWriting.write(Data("go\n".utf8))
        let watched = String(decoding: early, as: UTF8.self) + (try PythonDurus.finish(watcher, out, err, "replication.py"))
        #expect(watched.contains("after hello 4"), "\(watched)")

        var identical = false
        for _ in 0 ..< 100 where !identical {
            let all = try (0 ..< 3).map { try group.records(at: $0) }
            identical = all[0] == all[1] && all[1] == all[2] && !all[0].isEmpty
            if !identical { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(identical, "the sites hold different records")
    }

    /// A Swift client given every site's address uses site 1. Site 1 is
    /// killed, and another client changes an entry through site 2 while ours
    /// has not yet noticed. Our transaction in progress had read that entry:
    /// its commit moves to site 2 and conflicts (without the move's lost
    /// invalidations, it would land and overwrite the other client's
    /// change). After `abort()` the entry reads the other client's value, and
    /// a commit lands on the master.
    @Test func aSwiftClientMovesToAnotherSiteAndLosesNoUpdate() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        let sites: [ServerAddress] = [1, 2, 0].map { .tcp(host: "127.0.0.1", port: group.ports[$0]) }
        let storage = try ClientStorage(addresses: sites, ioTimeout: .seconds(10))
        let database = try Database(storage: storage, root: Ledger.self, types: [Entry.self])
        defer { try? database.close() }
        try database.transaction { try $0.root(Ledger.self).entries = [Entry(label: "shared", amount: 100)] }
        let mine = try database.open()
        #expect(try mine.root(Ledger.self).entries[0].amount == 100)
        #expect(storage.address == sites[0] && storage.sessionGeneration == 0)

        group.kill(1)
        let other = try Database(storage: ClientStorage(address: sites[1]), root: Ledger.self, types: [Entry.self])
        try other.transaction { try $0.root(Ledger.self).entries[0].amount = 70 }
        try other.close()

        try mine.root(Ledger.self).entries[0].amount += 1
        #expect(throws: ConflictError.self) { try mine.commit() }
        #expect(storage.address == sites[1] && storage.sessionGeneration == 1)
        mine.abort()
        #expect(try mine.root(Ledger.self).entries[0].amount == 70, "a cached copy from before the move was kept")
        try mine.root(Ledger.self).entries[0].amount += 1
        try mine.commit()

        let master = try Database(storage: ClientStorage(address: sites[2]), root: Ledger.self, types: [Entry.self])
        defer { try? master.close() }
        #expect(try master.transaction { try $0.root(Ledger.self).entries[0].amount } == 71)
        // With the last site gone too, the client moves on to the master.
        group.kill(2)
        #expect(try mine.root(Ledger.self).entries[0].amount == 71)
        mine.abort()
        #expect(try mine.root(Ledger.self).entries[0].amount == 71)
        #expect(storage.address == sites[2] && storage.sessionGeneration == 2)
    }

    /// Python bank clients transfer at both replicas, and a Swift client given
    /// every site's address transfers at the master, while the master is
    /// killed with SIGKILL: a new master takes commits within 10 s, the Swift
    /// client moves to another site and goes on, no audit ever sees a wrong
    /// total, the total stays constant, and the old master, restarted,
    /// rejoins and converges to the same records.
    @Test func bankInvariantHoldsWhileTheMasterIsKilled() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        let setup = try PythonDurus.run("bank.py", [group.address(1), "setup", "10", "100"])
        #expect(setup.hasPrefix("oids "))

        let transfers = try [1, 2].map { site in
            try PythonDurus.start("replication.py", [group.address(site), "transfer", "8", "\(site)"])
        }
        let swift: SwiftTransfers
        do {
            swift = try SwiftTransfers(sites: [0, 1, 2].map { .tcp(host: "127.0.0.1", port: group.ports[$0]) }, seconds: 8)
        } catch {
            print("the Swift client could not start: \(error); site 0's log ends:\n"
                  + ((try? String(contentsOfFile: group.log(0), encoding: .utf8))?.suffix(3000) ?? ""))
            throw error
        }
        Thread.sleep(forTimeInterval: 2.5)
        group.kill(0)
        let killed = ContinuousClock.now
        swift.markKilled()

        // A commit made through a replica waits for the election and goes to the new master.
        let client = try ClientStorage(address: .tcp(host: "127.0.0.1", port: group.ports[1]))
        let fresh = try client.newOID()
        try client.commit([record(fresh, "after the failover")])
        let failover = ContinuousClock.now - killed
        print("a commit through a replica landed \(failover) after the master was killed")
        #expect(failover < .seconds(10))
        try client.close()

        for (process, out, err) in transfers {
            let output = try PythonDurus.finish(process, out, err, "replication.py")
            print("bank client: \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
            #expect(output.contains("transfers=") && !output.contains("AUDIT FAILED"), "\(output)")
            // Every acknowledged transfer is there; a dropped connection's commit may be or not.
            let counts = Dictionary(output.split(whereSeparator: \.isWhitespace).compactMap { field -> (String, Int)? in
                let parts = field.split(separator: "=")
                guard parts.count == 2, let value = Int(parts[1]) else { return nil }
                return (String(parts[0]), value)
            }, uniquingKeysWith: { $1 })
            if let transferred = counts["transfers"], let tally = counts["tally"], let reconnects = counts["reconnects"] {
                #expect(tally >= transferred && tally <= transferred + reconnects, "\(output)")
            } else {
                Issue.record("no counts in \(output)")
            }
        }
        let report = swift.finish()
        print("Swift bank client: \(report)")
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.before > 0 && report.after > 0, "the Swift client did not go on after the kill")
        #expect(report.wrongAudits == 0)
        #expect(report.generation >= 1 && report.site != 0, "the Swift client did not move")
        // Every acknowledged transfer is there (those in doubt may be or not).
        let acknowledged = report.before + report.after
        #expect(report.tally >= acknowledged && report.tally <= acknowledged + report.inDoubt, "\(report)")
        for site in [1, 2] {
            #expect(try PythonDurus.run("bank.py", [group.address(site), "audit"]).contains("total=1000"), "site \(site)")
        }

        try group.start(0)
        #expect(try PythonDurus.run("bank.py", [group.address(0), "audit"]).contains("total=1000"))
        // One more commit after the rejoin, then every site holds the same records.
        _ = try PythonDurus.run("replication.py", [group.address(2), "transfer", "0.5", "7"])
        var identical = false
        for _ in 0 ..< 100 where !identical {
            let all = try (0 ..< 3).map { try group.records(at: $0) }
            identical = all[0] == all[1] && all[1] == all[2] && !all[0].isEmpty
            if !identical { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(identical, "the restarted site did not converge")
    }
}

/// Transfers between bank.py's accounts by a Swift `Database` over a
/// `ClientStorage` of several sites, on a thread of its own, auditing the
/// total every 10 transfers. A transfer whose commit was on its way when
/// its site died (`DurusError.network`) is of unknown outcome; either way
/// the total holds.
final class SwiftTransfers: @unchecked Sendable {
    struct Report: CustomStringConvertible {
        var before = 0, after = 0, inDoubt = 0, wrongAudits = 0, generation = 0, site = 0
        /// The Swift client's own tally, counted in every transfer's transaction.
        var tally = -1
        var failures: [String] = []
        var description: String {
            "\(before) transfers before the kill, \(after) after, \(inDoubt) in doubt, tally \(tally), "
                + "moved \(generation) time(s), at site \(site) at the end, \(wrongAudits) wrong audits"
        }
    }

    private final class Shared: Sendable {
        let killed = Atomic(false)
        let report = Mutex(Report())
    }

    private let shared = Shared()
    private let thread: Thread

    /// Transfers from now on count as made after the kill.
    func markKilled() { shared.killed.store(true, ordering: .releasing) }

    init(sites: [ServerAddress], seconds: Double) throws {
        let storage = try ClientStorage(addresses: sites, ioTimeout: .seconds(5))
        let database = try Database(storage: storage, root: BankRoot.self, types: [SharedAccount.self])
        // A tally only this client writes, beside the accounts: one more in
        // each transfer's transaction, so every acknowledged transfer is counted.
        for attempt in 1 ... 5 {
            do {
                try database.transaction { connection in
                    let root = try connection.root(BankRoot.self)
                    guard root.data["tally"] == nil else { return }
                    let tally = DurusPersistentDict<String, SharedAccount>()
                    tally["swift"] = SharedAccount()
                    root.data["tally"] = tally
                }
                break
            } catch DurusError.network where attempt < 5 {
                // Dropped with the commit's outcome unknown (seen twice in a dozen
                // runs, the reason not found): look again, at the next site.
                print("the Swift client's first commit was dropped (\(attempt)); trying again")
            }
        }
        let deadline = ContinuousClock.now + .seconds(seconds)
        let shared = shared
        thread = Thread {
            var random = SystemRandomNumberGenerator()
            var count = 0
            while ContinuousClock.now < deadline {
                do {
                    try database.transaction(retries: 100) { connection in
                        let accounts = try connection.root(BankRoot.self).data["accounts"]!
                        let names = accounts.keys.sorted()
                        let from = names.randomElement(using: &random)!, to = names.randomElement(using: &random)!
                        let amount = Int.random(in: 1 ... 20, using: &random)
                        accounts[from]!.balance -= amount
                        accounts[to]!.balance += amount
                        try connection.root(BankRoot.self).data["tally"]!["swift"]!.balance += 1
                    }
                    let after = shared.killed.load(ordering: .acquiring)
                    shared.report.withLock { after ? ($0.after += 1) : ($0.before += 1) }
                } catch DurusError.network {
                    shared.report.withLock { $0.inDoubt += 1 }
                } catch {
                    shared.report.withLock { $0.failures.append("\(error)") }
                    break
                }
                count += 1
                guard count % 10 == 0 else { continue }
                do {
                    let total = try database.transaction(retries: 100) { connection in
                        try connection.root(BankRoot.self).data["accounts"]!.contents.values.reduce(0) { $0 + $1.balance }
                    }
                    if total != 1000 { shared.report.withLock { $0.wrongAudits += 1 } }
                } catch DurusError.network {
                    continue
                } catch {
                    shared.report.withLock { $0.failures.append("audit: \(error)") }
                    break
                }
            }
            let tally = try? database.transaction(retries: 100) { connection in
                try connection.root(BankRoot.self).data["tally"]!["swift"]!.balance
            }
            let site = sites.firstIndex(of: storage.address) ?? -1
            shared.report.withLock { $0.generation = storage.sessionGeneration; $0.site = site; $0.tally = tally ?? -1 }
            try? database.close()
        }
        thread.start()
    }

    /// Waits for the thread and returns what it did.
    func finish() -> Report {
        while !thread.isFinished { usleep(10_000) }
        return shared.report.withLock { $0 }
    }
}
