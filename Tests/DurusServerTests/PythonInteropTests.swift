import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import DurusTestSupport
import Foundation
import Testing

/// The real Python Durus 4.3 against our server, and our client against its server.
@Suite(.serialized)
struct PythonInteropTests {
    /// Python clients store a graph (dicts, lists, nested references, a
    /// BTree of 10,000 entries) through the Swift server; a second Python
    /// process reads every object back and checks it; over TCP and over a
    /// Unix socket, on a Berkeley DB store.
    @Test(arguments: ["tcp", "unix"])
    func pythonClientsStoreAndReadAGraph(transport: String) throws {
        let directory = TemporaryDirectory("graph-\(transport)")
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        let server = try startServer(storage: storage) { configuration in
            if transport == "unix" { configuration.address = .unix(path: directory.file("durus.sock")) }
        }
        defer { server.stop(); try? storage.close() }
        let wrote = try PythonDurus.run("graph.py", [server.pythonAddress, "write"])
        #expect(wrote.contains("wrote 10200 objects"))
        let read = try PythonDurus.run("graph.py", [server.pythonAddress, "read"])
        #expect(read.contains("verified 10200 objects"))
        // The store holds what Python wrote: root, list, 200 dicts, and the BTree's nodes.
        #expect(storage.objectCount > 200)
        #expect(try storage.verify().isClean)
    }

    /// A Swift program (Database + ClientStorage, Swift objects) works
    /// against Python Durus's own `durus -s` server: commits, a second
    /// client reads them, conflicts come back typed.
    @Test func swiftClientAgainstThePythonServer() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (python, port) = try PythonDurus.startServer(file: directory.file("data.durus"))
        defer { kill(python.processIdentifier, SIGKILL); python.waitUntilExit() }
        let address = ServerAddress.tcp(host: "127.0.0.1", port: port)
        let database = try Database(storage: ClientStorage(address: address), root: Ledger.self, types: [Entry.self])
        try database.transaction { connection in
            let ledger = try connection.root(Ledger.self)
            for index in 0 ..< 50 { ledger.entries.append(Entry(label: "entry \(index)", amount: index)) }
        }
        let other = try Database(storage: ClientStorage(address: address), root: Ledger.self, types: [Entry.self])
        let (count, sum) = try other.transaction { connection in
            let ledger = try connection.root(Ledger.self)
            return (ledger.entries.count, ledger.entries.reduce(0) { $0 + $1.amount })
        }
        #expect(count == 50 && sum == 1225)

        // Write conflict: both change entry 0; the second commit learns of the
        // first at its commit exchange.
        let first = try database.open(), second = try other.open()
        try first.root(Ledger.self).entries[0].amount = 100
        try second.root(Ledger.self).entries[0].amount = 200
        try first.commit()
        #expect(throws: ConflictError.self) { try second.commit() }
        second.abort()
        #expect(try second.root(Ledger.self).entries[0].amount == 100)

        // Read conflict: the Python server answers I for an object changed
        // since this client's last sync.
        let raw = try ClientStorage(address: address)
        let entryOID = try #require(try first.root(Ledger.self).entries[1].oid)
        _ = try raw.load(entryOID)
        try first.root(Ledger.self).entries[1].amount = 7
        try first.commit()
        #expect(throws: ConflictError(.read, oids: [entryOID])) { try raw.load(entryOID) }
        #expect(try raw.sync().contains(entryOID))
        _ = try raw.load(entryOID)

        // The Python server reads what Swift wrote as records: a Python
        // client sees the root's record and its references.
        let script = """
            from durus.client_storage import ClientStorage
            from durus.serialize import unpack_record, split_oids
            s = ClientStorage(port=\(port))
            oid, data, refs = unpack_record(s.load(b'\\0' * 8))
            print(len(split_oids(refs)))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try PythonDurus.interpreter())
        process.arguments = ["-c", script]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        process.waitUntilExit()
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines) == "50")
    }

    /// A Python client and a Swift client change the same account; the one
    /// that commits second gets the conflict, aborts, retries, and the final
    /// balance holds both changes — once with Python losing, once Swift.
    @Test func crossLanguageConflict() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }
        let setup = try PythonDurus.run("bank.py", [server.pythonAddress, "setup", "2", "100"])
        let oid = try #require(Self.oids(setup)["a0"])

        // Python loads a0 (100) and waits; Swift adds 5 and commits; Python's
        // +10 then conflicts, it aborts and retries.
        let stdin = Pipe()
        let (process, out, err) = try PythonDurus.start("bank.py", [server.pythonAddress, "bump", "a0", "10"], stdin: stdin)
        let reader = out.fileHandleForReading
        #expect(String(decoding: reader.availableLine(), as: UTF8.self).hasPrefix("loaded 100"))
        let swift = try server.client()
        let bank = RecordBank(storage: swift, accounts: [oid])
        try bank.transfer(from: try #require(Self.oids(setup)["a1"]), to: oid, amount: 5)
        stdin.fileHandleForWriting.write(Data("go\n".utf8))
        let rest = try PythonDurus.finish(process, out, err, "bank.py bump")
        #expect(rest.contains("conflict WriteConflictError"))
        #expect(rest.contains("committed 115 after 2 tries"))

        // Now Swift loses: it reads a0, Python commits +10, Swift's commit conflicts.
        #expect(throws: ConflictError.self) { try swift.load(oid) }   // Python's commit is news to it
        #expect(try swift.sync() == [oid])
        let balance = try AccountPickle.balance(try swift.load(oid).data)
        #expect(balance == 115)
        let stdin2 = Pipe()
        let (second, out2, err2) = try PythonDurus.start("bank.py", [server.pythonAddress, "bump", "a0", "10"], stdin: stdin2)
        _ = out2.fileHandleForReading.availableLine()
        stdin2.fileHandleForWriting.write(Data("go\n".utf8))
        #expect(try PythonDurus.finish(second, out2, err2, "bank.py bump").contains("committed 125 after 1 tries"))
        var conflicted = false
        do {
            try swift.commit([Record(oid: oid, data: AccountPickle.data(balance: balance + 1), references: [])]) { oids in
                if oids.contains(oid) { throw ConflictError(.write, oids: [oid]) }
            }
        } catch let conflict as ConflictError {
            conflicted = conflict.kind == .write
        }
        #expect(conflicted)
        try bank.transfer(from: try #require(Self.oids(setup)["a1"]), to: oid, amount: 1)
        #expect(try AccountPickle.balance(try swift.load(oid).data) == 126)
        #expect(try RecordBank(storage: swift, accounts: Array(Self.oids(setup).values)).total() == 220)   // 200, plus Python's two +10s
    }

    /// Python processes, Swift network clients and in-process sessions of
    /// the server's hub move money among 8 accounts at once, for a fixed
    /// time, retrying on conflicts. Every audit (by each Python process,
    /// and by a Swift auditor throughout) sees the same total, and so does the end.
    @Test func bankTransfersAcrossLanguagesKeepTheTotal() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        let hub = SessionHub(storage: storage)
        let server = try startServer(hub: hub)
        defer { server.stop(); try? storage.close() }
        let setup = try PythonDurus.run("bank.py", [server.pythonAddress, "setup", "8", "1000"])
        let accounts = Array(Self.oids(setup).values).sorted()
        #expect(accounts.count == 8)
        let seconds = 4.0

        let pythons = try (0 ..< 2).map { index in
            try PythonDurus.start("bank.py", [server.pythonAddress, "transfer", "\(seconds)", "\(index + 1)"])
        }
        let storages: [any Storage] = [try server.client(), try server.client(), hub.openSession(), hub.openSession()]
        let auditor = RecordBank(storage: try server.client(), accounts: accounts)
        let transfers = Counter(), conflicts = Counter(), audits = Counter(), failures = Counter()
        let deadline = ContinuousClock.now + .seconds(seconds)
        let workers = (0 ... storages.count).map { worker in Thread {
            if worker == storages.count {
                while ContinuousClock.now < deadline {
                    if (try? auditor.total()) != 8000 { failures.add() }
                    audits.add()
                    usleep(20_000)
                }
                return
            }
            var random = SystemRandomNumberGenerator()   // the threads interleave freely anyway
            let bank = RecordBank(storage: storages[worker], accounts: accounts)
            while ContinuousClock.now < deadline {
                let source = accounts[Int(random.next() % 8)]
                var target = accounts[Int(random.next() % 8)]
                if target == source { target = accounts[(accounts.firstIndex(of: source)! + 1) % 8] }
                do {
                    conflicts.add(try bank.transfer(from: source, to: target, amount: Int(random.next() % 20) + 1))
                    transfers.add()
                } catch {
                    failures.add()
                }
            }
        } }
        workers.forEach { $0.start() }
        while workers.contains(where: { !$0.isFinished }) { usleep(10_000) }
        for (process, out, err) in pythons {
            let output = try PythonDurus.finish(process, out, err, "bank.py transfer")
            #expect(output.contains("transfers="))
            #expect(!output.contains("AUDIT FAILED"))
        }
        #expect(failures.value == 0)
        #expect(transfers.value > 50)
        #expect(audits.value > 10)
        #expect(try auditor.total() == 8000)
        #expect(try PythonDurus.run("bank.py", [server.pythonAddress, "audit"]).contains("total=8000"))
        print("bank: \(transfers.value) Swift transfers, \(conflicts.value) conflicts retried, \(audits.value) Swift audits")
    }

    /// Tried: 16 clients commit at once for 4 s on a Berkeley DB store with
    /// durability full (4 Python Durus 4.3 processes, 12 Swift network
    /// clients), each commit adding 1 to a shared counter and 1 to the
    /// client's own tally, retried on conflicts. Survives: each client's
    /// tally equals the commits it was told succeeded (none lost, none
    /// counted twice), and the counter equals their sum (no lost update).
    @Test func sixteenClientsOfTwoLanguagesCountWithoutLosingAnUpdate() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"), durability: .full)
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }
        let oids = Self.oids(try PythonDurus.run("bank.py", [server.pythonAddress, "setup", "17", "0"]))
        let counter = try #require(oids["a0"])
        let seconds = 4.0
        let pythons = try (1 ... 4).map { index in
            try PythonDurus.start("bank.py", [server.pythonAddress, "count", "\(seconds)", "a\(index)"])
        }
        let acknowledged = Mutex<[String: Int]>([:])
        let failures = Counter()
        let deadline = ContinuousClock.now + .seconds(seconds)
        let swiftClients = try (5 ... 16).map { index in (name: "a\(index)", bank: RecordBank(storage: try server.client(), accounts: [])) }
        let workers = swiftClients.map { client in Thread {
            var commits = 0
            while ContinuousClock.now < deadline {
                do {
                    try client.bank.increment([counter, oids[client.name]!])
                    commits += 1
                } catch {
                    failures.add()
                    break
                }
            }
            acknowledged.withLock { $0[client.name] = commits }
        } }
        workers.forEach { $0.start() }
        for (index, (process, out, err)) in pythons.enumerated() {
            let output = try PythonDurus.finish(process, out, err, "bank.py count")
            let commits = output.split(separator: " ").first { $0.hasPrefix("commits=") }.flatMap { Int($0.dropFirst(8)) }
            acknowledged.withLock { $0["a\(index + 1)"] = commits }
        }
        while workers.contains(where: { !$0.isFinished }) { usleep(10_000) }
        #expect(failures.value == 0)
        let counts = acknowledged.withLock { $0 }
        #expect(counts.count == 16)
        let names = (1 ... 16).map { "a\($0)" }
        let auditor = RecordBank(storage: try server.client(), accounts: [])
        let balances = try auditor.balances([counter] + names.map { oids[$0]! })
        for (name, balance) in zip(names, balances.dropFirst()) {
            #expect(balance == counts[name], "\(name): tally \(balance), acknowledged \(counts[name] ?? -1)")
        }
        #expect(balances[0] == counts.values.reduce(0, +))
        // Both languages committed. (How many each client lands in 4 s on a
        // loaded machine is timing: one Python process once landed none, all
        // its tries losing to faster clients, so no per-client bound here.)
        let python = (1 ... 4).reduce(0) { $0 + (counts["a\($1)"] ?? 0) }
        #expect(python > 0 && balances[0] > python, "\(counts)")
        print("16 clients: \(balances[0]) commits acknowledged and counted")
    }

    static func oids(_ setup: String) -> [String: OID] {
        var result: [String: OID] = [:]
        for pair in setup.split(whereSeparator: \.isWhitespace).dropFirst() {
            let parts = pair.split(separator: "=")
            if parts.count == 2, let value = UInt64(parts[1]) { result[String(parts[0])] = OID(value) }
        }
        return result
    }
}

/// A thread-safe tally.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add(_ amount: Int = 1) { count.withLock { $0 += amount } }
    var value: Int { count.withLock { $0 } }
}

import Synchronization

extension FileHandle {
    /// Reads up to and including the next newline.
    func availableLine() -> Data {
        var line = Data()
        while true {
            let byte = readData(ofLength: 1)
            if byte.isEmpty { return line }
            line += byte
            if byte.first == 0x0A { return line }
        }
    }
}
