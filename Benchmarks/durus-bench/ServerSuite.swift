import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import Foundation
import Logging

/// `server`: the Swift storage server (DurusServer on BerkeleyDBStorage) and
/// Python Durus 4.3's `durus -s` (FileStorage), filled alike and driven over
/// protocol v1 by the same blocking clients, one thread each; plus three
/// limits measured in the same run: a loopback echo of a load answer's size,
/// a commit echo (the commit exchange's two round trips around a raw libdb
/// put, one commit at a time), and BerkeleyDBStorage's own durable commit
/// rate with no server.
///
/// Every server runs for the whole suite, and the measurements are taken in
/// rounds, each one in turn, keeping each one's best rate (latency samples
/// are pooled), so neither side gains from a quiet moment of the machine.
func runServerSuite(_ arguments: [String]) throws {
    let objects = max(100, option("--objects", in: arguments, default: 10_000))
    let window = Duration.seconds(option("--seconds", in: arguments, default: 2))
    let rounds = max(1, option("--rounds", in: arguments, default: 3))
    let pythonPath = optionString("--python", in: arguments) ?? ProcessInfo.processInfo.environment["DURUS_PYTHON"]
        ?? localPython()
    print("server suite: \(objects) records of \(dataSize) bytes of data, \(rounds) rounds of \(window) per measurement")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date()); python: \(pythonPath)")

    let scratch = scratchDirectory("server")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }

    let modes = Durability.allCases.map(\.rawValue).joined(separator: ", ")
    print("starting and filling: Python Durus 4.3 server, Swift servers (\(modes)), embedded store")
    let python = try PythonServer(python: pythonPath, directory: scratch)
    defer { python.stop() }
    let theirs = try Subject(address: python.address, objects: objects)
    var swiftServers: [SwiftServer] = []
    defer { for server in swiftServers { try? server.stop() } }
    var ours: [Durability: Subject] = [:]
    for durability in Durability.allCases {
        let server = try SwiftServer(path: scratch + "/swift-\(durability.rawValue)", durability: durability)
        swiftServers.append(server)
        ours[durability] = try Subject(address: server.address, objects: objects)
    }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .full
    let embedded = try BerkeleyDBStorage(path: scratch + "/embedded", configuration: configuration)
    defer { try? embedded.close() }
    let embeddedTarget = try fill(embedded, objects: objects).last!
    // The commit echo's store: a plain libdb environment set up as the
    // servers' (write-no-sync, the like-for-like mode against Durus 4.3).
    let raw = try RawBerkeleyDB(path: scratch + "/commit-echo", cacheSize: configuration.cacheSize)
    defer { raw.close() }
    try raw.setDurability(Durability.writeNoSync.rawValue)

    let replySize = 1 + 4 + theirs.targets[0].bytes.count
    var best: [String: Double] = [:]
    func keep(_ key: String, _ value: Double) { best[key] = max(best[key] ?? 0, value) }
    var latency: [String: (durations: [Double], commits: Int)] = [:]
    let swift = ours[.writeNoSync]!
    // What each committing client sends: its own record, as commitRate's clients do.
    let transactions = swift.targets.map { WireProtocol.encodeTransaction([$0]) }
    for round in 1 ... rounds {
        print("round \(round) of \(rounds)")
        keep("echo", try echoRate(replySize: replySize, until: .now + window))
        keep("echo-16", try echoRate(replySize: replySize, clients: 16, until: .now + window))
        keep("nio-echo", try nioEchoRate(replySize: replySize, clients: 1, until: .now + window))
        keep("nio-echo-16", try nioEchoRate(replySize: replySize, clients: 16, until: .now + window))
        for clients in [1, 4, 16] {
            keep("loads-\(clients)-python", try theirs.loadRate(clients: clients, window: window))
            keep("loads-\(clients)-swift", try swift.loadRate(clients: clients, window: window))
        }
        for clients in commitClients {
            keep("commits-\(clients)-python", try theirs.commitRate(clients: clients, window: window))
            for durability in Durability.allCases {
                let rate = try ours[durability]!.commitRate(clients: clients, window: window)
                keep("commits-\(clients)-\(durability.rawValue)", rate)
            }
            let echo = try commitEchoRate(transactions: Array(transactions.prefix(clients)), store: raw,
                                          until: .now + window)
            keep("commit-echo-\(clients)", echo)
        }
        let start = ContinuousClock.now
        let count = try rewrite(embedded, embeddedTarget, until: start + window)
        keep("embedded", Double(count) / (ContinuousClock.now - start).seconds)
        for (name, subject) in [("swift", swift), ("python", theirs)] {
            let run = try subject.loadLatency(window: window)
            latency[name, default: ([], 0)].durations += run.durations
            latency[name, default: ([], 0)].commits += run.commits
        }
    }
    python.stop()
    for server in swiftServers { try server.stop() }
    try embedded.close()

    var rows: [Comparison] = []
    for clients in [1, 4, 16] {
        rows.append(Comparison(name: "loads-\(clientsLabel(clients))", unit: "loads/s",
                               ours: best["loads-\(clients)-swift"]!, theirs: best["loads-\(clients)-python"]!))
    }
    for durability in [Durability.writeNoSync, .full, .none] {
        for clients in commitClients {
            rows.append(Comparison(name: "commits-\(clientsLabel(clients))-\(durability.rawValue)-vs-python",
                                   unit: "commits/s", ours: best["commits-\(clients)-\(durability.rawValue)"]!,
                                   theirs: best["commits-\(clients)-python"]!))
        }
    }
    let percentiles = latency.mapValues { run in
        let sorted = run.durations.sorted()
        return [0.5, 0.99].map { sorted[Int(Double(sorted.count - 1) * $0)] }
    }
    rows.append(Comparison(name: "load-p50-while-committing", unit: "µs", ours: percentiles["swift"]![0],
                           theirs: percentiles["python"]![0]))
    rows.append(Comparison(name: "load-p99-while-committing", unit: "µs", ours: percentiles["swift"]![1],
                           theirs: percentiles["python"]![1]))
    rows.append(Comparison(name: "loads-1-client-vs-echo", unit: "loads/s", ours: best["loads-1-swift"]!,
                           theirs: best["echo"]!))
    rows.append(Comparison(name: "loads-16-clients-vs-echo", unit: "loads/s", ours: best["loads-16-swift"]!,
                           theirs: best["echo-16"]!))
    rows.append(Comparison(name: "loads-1-client-vs-nio-echo", unit: "loads/s", ours: best["loads-1-swift"]!,
                           theirs: best["nio-echo"]!))
    rows.append(Comparison(name: "loads-16-clients-vs-nio-echo", unit: "loads/s", ours: best["loads-16-swift"]!,
                           theirs: best["nio-echo-16"]!))
    for clients in commitClients {
        rows.append(Comparison(name: "commits-\(clientsLabel(clients))-vs-commit-echo", unit: "commits/s",
                               ours: best["commits-\(clients)-write-no-sync"]!, theirs: best["commit-echo-\(clients)"]!))
    }
    rows.append(Comparison(name: "commits-16-clients-full-vs-1-client-full", unit: "commits/s",
                           ours: best["commits-16-full"]!, theirs: best["commits-1-full"]!))
    rows.append(Comparison(name: "durable-commits-1-client-vs-embedded", unit: "commits/s",
                           ours: best["commits-1-full"]!, theirs: best["embedded"]!))

    let sizes = Set(transactions.map(\.count)).sorted().map(String.init).joined(separator: " or ")
    print("")
    print("theirs: Python Durus 4.3 `durus -s` on a FileStorage (logging level 30, so neither server logs each commit),")
    print("  except loads-1-client-vs-echo (a loopback thread answering each byte with \(replySize) bytes, one")
    print("  synchronous client), loads-16-clients-vs-echo (16 such clients, a thread answering each: the most")
    print("  any server could reach here; the ceiling line sets it against Durus 4.3), loads-N-vs-nio-echo (the same")
    print("  clients answered by a SwiftNIO server on DurusServer's 2 event loops that only writes the bytes back:")
    print("  DurusServer's I/O path with no protocol or storage), commits-N-clients-vs-commit-echo")
    print("  (N clients each sending C, reading an empty invalidation list, sending the transaction data of a commit")
    print("  of its own record, \(sizes) bytes, and reading the status, answered by a thread per client that puts the")
    print("  record in a raw libdb transaction, write-no-sync, under one lock from C to status: no server can commit")
    print("  faster; ours is the write-no-sync server), commits-16-clients-full-vs-1-client-full (ours, durability")
    print("  full, at 16 clients and at 1: what group commit's shared fsyncs bring), and")
    print("  durable-commits-1-client-vs-embedded (BerkeleyDBStorage, durability full, no server).")
    print("note: FileStorage never fsyncs on commit, so the write-no-sync rows are the like-for-like commit comparison;")
    print("  full (fsync per commit) and none (log kept in memory) are set against the same Python figures.")
    print("note: loads and latency are measured on the write-no-sync server; latency rows are ours ÷ theirs in µs,")
    print("  below 1 means we answer faster. Rates are the best of \(rounds) rounds; latency pools every round's loads.")
    for (name, key) in [("swift-durus", "swift"), ("Durus 4.3", "python")] {
        let run = latency[key]!
        print("latency runs (\(name)): \(run.durations.count) loads while \(run.commits) commits went through")
    }
    print("goals: commits-{1,4,16}-write-no-sync-vs-python ≥ 2; commits-16-clients-vs-commit-echo ≥ 0.6;")
    print("  commits-16-clients-full-vs-1-client-full ≥ 2; loads-16-clients-vs-echo ≥ 0.8; loads-1-client-vs-echo ≥ 0.85;")
    print("  load-p99-while-committing ≤ 0.3")
    // The 1-client commit goal's ceiling: one client's two round trips and
    // one raw libdb commit, nothing of ours in between.
    print(String(format: "ceiling commits-1-client %.3f× Durus 4.3 (the 1-client commit echo, %.0f commits/s)",
                 best["commit-echo-1"]! / best["commits-1-python"]!, best["commit-echo-1"]!))
    // The 16-client goal's ceiling: a server that did no work at all would
    // answer 16 clients no faster than the echo.
    print(String(format: "ceiling loads-16-clients %.3f× Durus 4.3 (the 16-client echo, %.0f round trips/s)",
                 best["echo-16"]! / best["loads-16-python"]!, best["echo-16"]!))
    // What SwiftNIO alone leaves of the thread echo, at 1 and 16 clients.
    print(String(format: "ceiling loads-nio-echo %.3f / %.3f of the thread echo at 1 / 16 clients",
                 best["nio-echo"]! / best["echo"]!, best["nio-echo-16"]! / best["echo-16"]!))
    // The same for commits: a server that did nothing but the exchange's
    // round trips and a raw 1-record put commits 16 clients no faster.
    print(String(format: "ceiling commits-16-clients %.3f× Durus 4.3 (the 16-client commit echo, %.0f commits/s)",
                 best["commit-echo-16"]! / best["commits-16-python"]!, best["commit-echo-16"]!))
    report("server: DurusServer on BerkeleyDBStorage vs. Python Durus 4.3's storage server, over protocol v1",
           theirs: "theirs", rows)
}

/// Bytes of data in every filled record.
private let dataSize = 200

/// The client counts of the commit measurements; the servers' subjects keep a record for each of the most.
private let commitClients = [1, 4, 16]

private func clientsLabel(_ clients: Int) -> String { clients == 1 ? "1-client" : "\(clients)-clients" }

/// `.build/durus-venv/bin/python` under the current directory if there is
/// one, else under the package root.
private func localPython() -> String {
    let local = FileManager.default.currentDirectoryPath + "/.build/durus-venv/bin/python"
    return FileManager.default.isExecutableFile(atPath: local) ? local : defaultPython()
}

/// Fills `storage` through its own interface: `objects` records in commits of
/// 1,000, each batch a chain from its first record to its last, the root
/// (OID 0) referencing every chain's head so nothing is garbage. Returns the
/// records under the root.
private func fill(_ storage: any Storage, objects: Int) throws -> [Record] {
    let oids = try storage.newOIDs(count: objects + 1)
    guard oids[0] == .root else { throw BenchError(description: "the first OID handed out is \(oids[0]), not the root") }
    var random = BenchRandom(state: 42)
    var heads: [OID] = []
    var leaves: [Record] = []
    for start in stride(from: 1, through: objects, by: 1000) {
        let batch = start ..< min(start + 1000, objects + 1)
        heads.append(oids[start])
        let records = batch.map { index in
            Record(oid: oids[index], data: (0 ..< dataSize).map { _ in UInt8.random(in: 0 ... 255, using: &random) },
                   references: index + 1 < batch.upperBound ? [oids[index + 1]] : [])
        }
        try storage.commit(records + [Record(oid: .root, data: Array("root".utf8), references: heads)])
        leaves += records
    }
    return leaves
}

/// Rewrites `target` (new data, the same references), one commit at a time,
/// until `deadline`; checks the last write reads back. Returns the commit count.
private func rewrite(_ storage: any Storage, _ target: Record, until deadline: ContinuousClock.Instant) throws -> Int {
    var data = Array(target.data)
    var serial: UInt64 = 0
    let count = try repeatUntil(deadline) {
        serial += 1
        withUnsafeBytes(of: serial) { data.replaceSubrange(0 ..< 8, with: $0) }
        try storage.commit([Record(oid: target.oid, data: data, references: target.references)])
    }
    guard try storage.load(target.oid).data.elementsEqual(data) else {
        throw BenchError(description: "\(target.oid) does not read back as last committed")
    }
    return count
}

/// A server under test, filled through the protocol.
private struct Subject {
    var address: ServerAddress
    /// The records loads pick from.
    var loadable: [OID]
    /// The records commits rewrite, one per client; loads never meet their invalidations.
    var targets: [Record]

    init(address: ServerAddress, objects: Int) throws {
        self.address = address
        let client = try ClientStorage(address: address)
        defer { try? client.close() }
        let leaves = try fill(client, objects: objects)
        targets = Array(leaves.suffix(commitClients.max()!))
        loadable = leaves.dropLast(targets.count).map(\.oid)
    }

    private func clients(_ count: Int) throws -> [ClientStorage] {
        try (0 ..< count).map { _ in try ClientStorage(address: address) }
    }

    /// Loads per second of `clients` clients, each loading random records one at a time.
    func loadRate(clients count: Int, window: Duration) throws -> Double {
        let storages = try clients(count)
        defer { for storage in storages { try? storage.close() } }
        let oids = loadable
        let start = ContinuousClock.now
        let counts = try onThreads(count) { client in
            var random = BenchRandom(state: UInt64(client + 1))
            return try repeatUntil(start + window) {
                let oid = oids[Int.random(in: 0 ..< oids.count, using: &random)]
                guard try storages[client].load(oid).oid == oid else {
                    throw BenchError(description: "\(oid) loaded another record")
                }
            }
        }
        return Double(counts.reduce(0, +)) / (ContinuousClock.now - start).seconds
    }

    /// Commits per second of `clients` clients, each rewriting its own record.
    func commitRate(clients count: Int, window: Duration) throws -> Double {
        let storages = try clients(count)
        defer { for storage in storages { try? storage.close() } }
        let targets = targets
        let start = ContinuousClock.now
        let counts = try onThreads(count) { client in
            try rewrite(storages[client], targets[client], until: start + window)
        }
        return Double(counts.reduce(0, +)) / (ContinuousClock.now - start).seconds
    }

    /// One client's load durations (µs) while a second client commits without pause, and that client's commit count.
    func loadLatency(window: Duration) throws -> (durations: [Double], commits: Int) {
        let storages = try clients(2)
        defer { for storage in storages { try? storage.close() } }
        let (oids, target) = (loadable, targets[0])
        let deadline = ContinuousClock.now + window
        let results = try onThreads(2) { role -> (durations: [Double], commits: Int) in
            guard role == 0 else { return ([], try rewrite(storages[1], target, until: deadline)) }
            var random = BenchRandom(state: 99)
            var durations: [Double] = []
            _ = try repeatUntil(deadline) {
                let oid = oids[Int.random(in: 0 ..< oids.count, using: &random)]
                let began = ContinuousClock.now
                _ = try storages[0].load(oid)
                durations.append((ContinuousClock.now - began).seconds * 1e6)
            }
            return (durations, 0)
        }
        return (results[0].durations, results[1].commits)
    }
}

/// A DurusServer on a fresh BerkeleyDBStorage, in this process.
private final class SwiftServer {
    let storage: BerkeleyDBStorage
    let server: DurusServer
    var address: ServerAddress { server.address }

    init(path: String, durability: Durability, eventLoops: Int? = nil) throws {
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.durability = durability
        storage = try BerkeleyDBStorage(path: path, configuration: configuration)
        var logger = Logger(label: "durus-bench.server")
        logger.logLevel = .warning  // the server logs every commit at info; warnings (a dropped client) still show
        do {
            var listen = ServerConfiguration(address: .tcp(host: "127.0.0.1", port: 0))
            if let eventLoops { listen.eventLoopThreads = eventLoops }
            server = try DurusServer(storage: storage, configuration: listen, logger: logger)
        } catch {
            try? storage.close()
            throw error
        }
    }

    /// Stops serving and closes the storage; safe to call again.
    func stop() throws {
        server.shutdown()
        server.waitUntilStopped()
        try storage.close()
    }
}

/// Python Durus 4.3's storage server: a child process on a free port, its FileStorage in `directory`.
private final class PythonServer {
    let process = Process()
    let address: ServerAddress

    init(python: String, directory: String) throws {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw BenchError(description: "no Python at \(python): run scripts/test once, set DURUS_PYTHON or pass --python")
        }
        let port = try freeLoopbackPort()
        address = .tcp(host: "127.0.0.1", port: port)
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "durus", "-s", "--port", "\(port)", "--file", directory + "/python.durus",
                             "--logginglevel", "30"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        do {
            try waitForListener(process, port: port, within: .seconds(30), name: "the Python server")
        } catch {
            stop()
            throw error
        }
    }

    /// Terminates the server and waits for it; safe to call again.
    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// `server-commits` and `server-loads`: only the Swift server's commit (or
/// load) rate, for profiling one phase under `perf` or `valgrind` (no
/// Python, no other phase).
///
///     durus-bench server-commits [--clients N] [--seconds S] [--durability full|write-no-sync|none]
///     durus-bench server-loads [--clients N] [--seconds S]
///
/// `--event-loops N` serves with N event-loop threads instead of the default.
func runServerLoadsProfile(_ arguments: [String]) throws {
    try runServerCommitsProfile(arguments, loads: true)
}

/// `server-latency`: load latency while another client commits, on the
/// Swift server alone (the suite's latency rows without Python).
///
///     durus-bench server-latency [--seconds S] [--event-loops N]
func runServerLatencyProfile(_ arguments: [String]) throws {
    let window = Duration.seconds(option("--seconds", in: arguments, default: 10))
    let run = try withProfiledServer(arguments, durability: .writeNoSync) { try $0.loadLatency(window: window) }
    let sorted = run.durations.sorted()
    let at = { (q: Double) in sorted[Int(Double(sorted.count - 1) * q)] }
    print(String(format: "server-latency: %d loads while %d commits: p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs",
                 sorted.count, run.commits, at(0.5), at(0.99), at(0.999)))
}

func runServerCommitsProfile(_ arguments: [String]) throws {
    try runServerCommitsProfile(arguments, loads: false)
}

private func runServerCommitsProfile(_ arguments: [String], loads: Bool) throws {
    let clients = max(1, option("--clients", in: arguments, default: 4))
    let window = Duration.seconds(option("--seconds", in: arguments, default: 10))
    let durability = optionString("--durability", in: arguments).flatMap(Durability.init(rawValue:)) ?? .writeNoSync
    let rate = try withProfiledServer(arguments, durability: durability) { subject in
        try loads ? subject.loadRate(clients: clients, window: window) : subject.commitRate(clients: clients, window: window)
    }
    if loads {
        print(String(format: "server-loads: %d clients: %.0f loads/s", clients, rate))
    } else {
        print(String(format: "server-commits: %d clients, %@: %.0f commits/s", clients, durability.rawValue, rate))
    }
}

/// Runs `body` against a Swift server on a fresh store of 1,000 records in
/// a scratch directory (`--event-loops N` from `arguments`), then removes it.
private func withProfiledServer<T>(_ arguments: [String], durability: Durability, _ body: (Subject) throws -> T) throws -> T {
    let scratch = scratchDirectory("server-profile")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let eventLoops = optionString("--event-loops", in: arguments).flatMap { Int($0) }
    let server = try SwiftServer(path: scratch + "/swift", durability: durability, eventLoops: eventLoops)
    defer { try? server.stop() }
    return try body(try Subject(address: server.address, objects: 1000))
}
