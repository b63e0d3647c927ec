import Durus
import DurusBerkeleyDB
import Foundation
import DurusTestSupport
import Testing

/// Kills a committing process with SIGKILL at random moments and checks what survives.
@Suite(.serialized) struct CrashTests {
    /// What a reopened store must show after a kill: the root at or past the
    /// last acknowledged commit (when the mode promises it), every object
    /// the root references loadable, and the tables consistent.
    func checkAfterKill(_ dir: String, lastAck: UInt64?, durable: Bool, round: Int) throws -> UInt64 {
        let storage = try openStore(dir)
        defer { try? storage.close() }
        let report = try storage.verify()
        #expect(report.isClean, "round \(round): \(report)")
        guard let root = try? storage.load(.root), root.data.count == 16 else {
            #expect(lastAck == nil || !durable, "round \(round): the root is gone after acknowledged commits")
            return 0
        }
        let commit = OID(bytes: Array(root.data.prefix(8)))!.rawValue
        if durable, let lastAck {
            #expect(commit >= lastAck, "round \(round): acknowledged commit \(lastAck) lost; the store holds \(commit)")
        }
        for ref in root.references { #expect(throws: Never.self) { try storage.load(ref) } }
        #expect(try storage.storedOIDs() == reachable(from: .root, in: try graph(storage)),
                "round \(round): only reachable objects remain")
        return commit
    }

    func graph(_ storage: BerkeleyDBStorage) throws -> [OID: Set<OID>] {
        var graph: [OID: Set<OID>] = [:]
        try storage.forEachRecord { graph[$0.oid] = $0.referenceSet }
        return graph
    }

    /// `kills` rounds; collecting in the background, rounds go on (up to
    /// three times as many) until `kills` of them killed the child while its
    /// collector had garbage queued (its last report before the kill).
    func killRepeatedly(_ durability: Durability, kills: Int, seed: UInt64, background: Bool = false) throws {
        let dir = TemporaryDirectory("crash-\(durability.rawValue)\(background ? "-background" : "")")
        defer { dir.remove() }
        var random = SeededRandom(seed: seed)
        var highest: UInt64 = 0
        var acknowledgedKills = 0
        var killsWhileCollecting = 0
        var round = 0
        while background ? killsWhileCollecting < kills && round < 3 * kills : round < kills {
            defer { round += 1 }
            let (output, errors, killed) = try CrashChild.killAfterReady(
                ["commit-loop", dir.path, durability.rawValue] + (background ? ["background"] : []),
                delay: UInt32.random(in: 20_000 ... 300_000, using: &random))
            let lines = output.split(separator: "\n")
            #expect(errors.isEmpty, "round \(round): the child failed by itself: \(errors)")
            #expect(killed, "round \(round): the child was not killed")
            let lastAck = lines.last(where: { $0.hasPrefix("ack ") }).flatMap { UInt64($0.dropFirst(4)) }
            if lastAck != nil { acknowledgedKills += 1 }
            let queued = lines.last(where: { $0.hasPrefix("queued ") }).flatMap { Int($0.dropFirst(7)) } ?? 0
            if queued > 0 { killsWhileCollecting += 1 }
            let found = try checkAfterKill(dir.path, lastAck: lastAck, durable: durability != .none, round: round)
            if durability != .none { #expect(found >= highest, "round \(round): the store went back in time") }
            highest = max(highest, found)
        }
        #expect(acknowledgedKills >= kills / 2, "most kills must land after commits began")
        #expect(highest > 0)
        if background {
            print("background collection: \(killsWhileCollecting) of \(round) kills with garbage queued")
            #expect(killsWhileCollecting >= kills, "\(killsWhileCollecting) of \(round) kills landed while garbage was queued")
        }
    }

    @Test func fullDurabilityKeepsEveryAcknowledgedCommit() throws {
        try killRepeatedly(.full, kills: 20, seed: 1)
    }

    /// Four threads of one process, a `Connection` each, commit with full
    /// durability through one `Database`. Killed at random moments (Berkeley
    /// DB's unwritten log buffer dies with the process), every counter holds
    /// at least the value its thread last saw committed.
    @Test func connectionsOnFourThreadsKeepEveryAcknowledgedCommit() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var random = SeededRandom(seed: 17)
        var acknowledged = 0
        for round in 0 ..< 6 {
            let (output, errors, killed) = try CrashChild.killAfterReady(
                ["connections", dir.path], delay: UInt32.random(in: 50_000 ... 300_000, using: &random))
            #expect(errors.isEmpty && killed, "round \(round): \(errors)")
            var last: [Int: Int] = [:]
            for line in output.split(separator: "\n") where line.hasPrefix("ack ") {
                let fields = line.split(separator: " ").compactMap { Int($0) }
                guard fields.count == 2 else { continue }   // the last line may be cut by the kill
                last[fields[0]] = max(last[fields[0]] ?? 0, fields[1])
                acknowledged += 1
            }
            let (lines, status, error) = try CrashChild.run(["counters", dir.path])
            #expect(status == 0, "round \(round): \(error)")
            #expect(lines.contains("clean true"), "round \(round): \(lines)")
            #expect(lines.filter { $0.hasPrefix("value ") }.count == 4, "round \(round): \(lines)")
            for line in lines where line.hasPrefix("value ") {
                let fields = line.split(separator: " ").compactMap { Int($0) }
                let told = last[fields[0]] ?? 0
                #expect(fields[1] >= told, "round \(round): thread \(fields[0]) was told \(told), the store holds \(fields[1])")
            }
        }
        #expect(acknowledged >= 6, "only \(acknowledged) commits were acknowledged")
    }

    @Test func writeNoSyncSurvivesProcessKills() throws {
        try killRepeatedly(.writeNoSync, kills: 20, seed: 2)
    }

    /// Kills land while the background collector drains chains of 60 objects
    /// (at least 20 of them with garbage queued).
    @Test func backgroundCollectionSurvivesKills() throws {
        try killRepeatedly(.writeNoSync, kills: 20, seed: 4, background: true)
    }

    /// Kills land while the cycle collector marks a graph of 20,000+
    /// objects full of cycles, a mutator committing relinks meanwhile. After
    /// each kill the reopened store is consistent and everything reachable
    /// is there (the mutator only ever references what is reachable, so a
    /// deletion of the reachable would also have shown as its failure).
    /// The progress the killed run left in the store tells which phase the
    /// kill hit; rounds go on until 20 hit the marking. A last collection
    /// then leaves exactly the reachable set.
    @Test func cycleMarkingSurvivesKills() throws {
        let dir = TemporaryDirectory("crash-cycles")
        defer { dir.remove() }
        var random = SeededRandom(seed: 5)
        var phases: [String: Int] = [:]
        var rounds = 0
        var lastProgress: BerkeleyDBStorage.CycleCollectionProgress?
        while phases["marking", default: 0] < 20 && rounds < 80 {
            rounds += 1
            let (output, errors, killed) = try CrashChild.killAfterReady(
                ["cycles", dir.path], delay: UInt32.random(in: 50_000 ... 1_500_000, using: &random))
            #expect(errors.isEmpty, "round \(rounds): the child failed by itself: \(errors)")
            #expect(killed, "round \(rounds): the child was not killed")
            #expect(output.contains("ready"), "round \(rounds): the child never got going")

            let storage = try openStore(dir.path)
            let progress = try storage.cycleCollectionProgress()
            lastProgress = progress
            if let progress {
                #expect(!progress.isRunning, "round \(rounds): the killed run still looks alive")
                phases[progress.phase.rawValue, default: 0] += 1
            } else {
                phases["between runs", default: 0] += 1
            }
            let report = try storage.verify()
            #expect(report.isConsistent, "round \(rounds): \(report)")
            let graph = try graph(storage)
            let live = reachable(from: .root, in: graph)
            let missing = live.filter { graph[$0] == nil }
            #expect(missing.isEmpty, "round \(rounds): reachable objects deleted: \(missing.prefix(10))")
            try storage.close()
        }
        print("cycle collector kills by phase after \(rounds) rounds: \(phases)")
        #expect(phases["marking", default: 0] >= 20, "kills by phase: \(phases)")
        // The operator sees the interrupted run (the `durus` command is built beside this helper).
        if lastProgress != nil {
            let durus = URL(fileURLWithPath: CrashChild.executable).deletingLastPathComponent().appendingPathComponent("durus")
            let process = Process()
            process.executableURL = durus
            process.arguments = ["stats", dir.path]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(text.contains("interrupted (process"), "durus stats said: \(text)")
        }

        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        try storage.collectCycles()
        #expect(try storage.cycleCollectionProgress() == nil)
        #expect(try storage.storedOIDs() == reachable(from: .root, in: try graph(storage)))
        #expect(try storage.verify().isClean)
    }

    @Test func noDurabilityStaysConsistent() throws {
        try killRepeatedly(.none, kills: 20, seed: 3)
    }

    @Test func readOnlyProcessSharesAStoreAWriterHolds() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = try openStore(dir.path)
        defer { try? writer.close() }
        let root = try writer.newOID()
        try writer.commit([Record(oid: root, data: [7, 7], references: [])])
        let (lines, status, error) = try CrashChild.run(["read", dir.path])
        #expect(status == 0, "\(error)")
        #expect(lines == ["objects 1", "root [7, 7]", "write refused", "clean true"])
        // The writer keeps working after the reader has gone.
        try writer.commit([Record(oid: root, data: [8], references: [])])
        #expect(try writer.load(root).data == [8])
    }
}
