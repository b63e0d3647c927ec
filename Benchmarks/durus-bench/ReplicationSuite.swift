import Durus
import DurusClient
import Foundation

/// `replication`: `durus serve` processes (the `durus` built beside this
/// program), one site against three on loopback.
///
///     durus-bench replication [--seconds S] [--clients N] [--lag-commits N]
///
/// - commits/s of `--clients` (4) clients, write-no-sync, at a single
///   site and at the master of a three-site `quorum` group:
///   `ratio commits-quorum-vs-single-site`;
/// - replication lag: a commit at the master, then a client at a replica
///   loads until it sees it (each a fresh value), p50 and p99 in ms;
/// - loads/s of 16 clients at one site against 16 spread over three:
///   `ratio loads-3-sites-vs-1-site` (a 2-core machine cannot scale it), and
///   the CPU each site spends per load, a replica's against the master's.
func runReplicationSuite(_ arguments: [String]) throws {
    let window = Duration.seconds(option("--seconds", in: arguments, default: 3))
    let clients = option("--clients", in: arguments, default: 4)
    let lagCommits = option("--lag-commits", in: arguments, default: 300)
    let scratch = scratchDirectory("replication")
    defer { try? FileManager.default.removeItem(atPath: scratch) }

    // One site.
    let single = try ServeProcess(directory: scratch + "/single", replication: nil, peers: [])
    let singleCommits: Double
    let singleLoads: Double
    do {
        defer { single.stop() }
        let oids = try seed(single.port, objects: 200)
        singleCommits = try commitRate(single.port, oids: oids, clients: clients, window: window)
        singleLoads = try loadRate([single.port], clients: 16, oids: oids, window: window).rate
    }

    // Three sites.
    let replicationPorts = try (0 ..< 3).map { _ in try freeLoopbackPort() }
    var sites: [ServeProcess] = []
    defer { for site in sites { site.stop() } }
    for index in 0 ..< 3 {
        sites.append(try ServeProcess(directory: scratch + "/site\(index)", replication: replicationPorts[index],
                                      peers: index == 0 ? [] : [replicationPorts[0]]))
    }
    let oids = try seed(sites[0].port, objects: 200)
    let quorumCommits = try commitRate(sites[0].port, oids: oids, clients: clients, window: window)
    let lags = try lagSamples(master: sites[0].port, replica: sites[1].port, oid: oids[oids.count - 1], commits: lagCommits)
    let cpuBefore = sites.map { $0.cpuSeconds() }
    let spread = try loadRate(sites.map(\.port), clients: 16, oids: oids, window: window)
    let cpu = zip(sites.map { $0.cpuSeconds() }, cpuBefore).map { $0 - $1 }
    let perLoad = (0 ..< 3).map { cpu[$0] / Double(max(1, spread.perSite[$0])) * 1e6 }

    let sorted = lags.sorted()
    let p50 = sorted[sorted.count / 2], p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
    print("")
    print("replication lag (\(sorted.count) commits at the master, seen at a replica): p50 \(String(format: "%.2f", p50)) ms, p99 \(String(format: "%.2f", p99)) ms (goal p99 < 50 ms)")
    print("CPU per load: master \(String(format: "%.1f", perLoad[0])) µs, replicas \(String(format: "%.1f", perLoad[1])) and \(String(format: "%.1f", perLoad[2])) µs; replica ÷ master \(String(format: "%.2f", (perLoad[1] + perLoad[2]) / 2 / perLoad[0])) (goal ≤ 1.1)")
    report("durus serve: three sites (quorum acks) against one", theirs: "one site", [
        Comparison(name: "commits-quorum-vs-single-site", unit: "commits/s", ours: quorumCommits, theirs: singleCommits),
        Comparison(name: "loads-3-sites-vs-1-site", unit: "loads/s", ours: spread.rate, theirs: singleLoads),
    ])
}

/// One `durus serve` child process, write-no-sync.
private final class ServeProcess {
    let process = Process()
    let port: Int

    init(directory: String, replication: Int?, peers: [Int]) throws {
        port = try freeLoopbackPort()
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("durus").path
        guard FileManager.default.isExecutableFile(atPath: beside) else {
            throw BenchError(description: "no durus beside durus-bench (\(beside)): build the package first")
        }
        process.executableURL = URL(fileURLWithPath: beside)
        var arguments = ["serve", "--db", directory, "--port", "\(port)", "--durability", "write-no-sync", "--log-level", "warning"]
        if let replication {
            arguments += ["--replication", "127.0.0.1:\(replication)"]
            for peer in peers { arguments += ["--peer", "127.0.0.1:\(peer)"] }
        }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        do {
            try waitForListener(process, port: port, within: .seconds(60), name: "durus serve")
        } catch {
            stop()
            throw error
        }
    }

    /// User and system CPU time the process has used, in seconds.
    func cpuSeconds() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based, counting pid and comm).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

private func client(_ port: Int) throws -> ClientStorage {
    try ClientStorage(address: .tcp(host: "127.0.0.1", port: port))
}

private func bytes(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

/// A root referencing `objects` small records; their OIDs.
private func seed(_ port: Int, objects: Int) throws -> [OID] {
    let storage = try client(port)
    defer { try? storage.close() }
    let root = try storage.newOID()
    var records: [Record] = []
    for index in 0 ..< objects { records.append(Record(oid: try storage.newOID(), data: bytes(UInt64(index)), references: [])) }
    try storage.commit([Record(oid: root, data: bytes(0), references: records.map(\.oid))] + records)
    return records.map(\.oid)
}

/// Commits per second of `clients` clients, each rewriting a seeded object of its own.
private func commitRate(_ port: Int, oids: [OID], clients: Int, window: Duration) throws -> Double {
    let counts = try onThreads(clients) { index -> Int in
        let storage = try client(port)
        defer { try? storage.close() }
        let oid = oids[index]
        var value: UInt64 = 1 << 32
        let deadline = ContinuousClock.now + window
        return try repeatUntil(deadline) {
            value += 1
            try storage.commit([Record(oid: oid, data: bytes(value), references: [])])
        }
    }
    return Double(counts.reduce(0, +)) / window.seconds
}

/// Milliseconds from a commit at the master to a replica client's load seeing it.
private func lagSamples(master: Int, replica: Int, oid: OID, commits: Int) throws -> [Double] {
    let writer = try client(master)
    let reader = try client(replica)
    defer { try? writer.close(); try? reader.close() }
    var samples: [Double] = []
    for value in (1 << 40) ... (1 << 40) + UInt64(commits) {
        try writer.commit([Record(oid: oid, data: bytes(value), references: [])])
        let committed = ContinuousClock.now
        while true {
            _ = try reader.sync()
            if let record = try? reader.load(oid), record.data.elementsEqual(bytes(value)) { break }
            if ContinuousClock.now - committed > .seconds(10) { throw BenchError(description: "a commit never reached the replica") }
        }
        samples.append((ContinuousClock.now - committed).seconds * 1000)
        usleep(2_000)
    }
    return samples
}

/// Loads per second of `clients` clients spread over `ports`, and each port's count.
private func loadRate(_ ports: [Int], clients: Int, oids: [OID], window: Duration) throws -> (rate: Double, perSite: [Int]) {
    let counts = try onThreads(clients) { index -> Int in
        let storage = try client(ports[index % ports.count])
        defer { try? storage.close() }
        var random = index
        let deadline = ContinuousClock.now + window
        return try repeatUntil(deadline) {
            random = (random &* 1_103_515_245 &+ 12_345) & 0x7fff_ffff
            do {
                _ = try storage.load(oids[random % oids.count])
            } catch is ConflictError {
                _ = try storage.sync()     // a commit the session had not heard of yet
            }
        }
    }
    var perSite = Array(repeating: 0, count: ports.count)
    for (index, count) in counts.enumerated() { perSite[index % ports.count] += count }
    return (Double(counts.reduce(0, +)) / window.seconds, perSite)
}
