import Durus
import DurusBerkeleyDB
import Foundation
import Synchronization
import DurusTestSupport
import Testing

/// The cycle collector: unreachable cycles go, the reachable never do, even
/// while commits relink objects (garbage among them) during a collection.
@Suite struct CycleCollectionTests {
    @Test func collectsCyclesAndWhatHangsFromThem() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.path)
        defer { try? storage.close() }
        let oids = try storage.newOIDs(count: 7)
        let (root, a, b, c, d, e, f) = (oids[0], oids[1], oids[2], oids[3], oids[4], oids[5], oids[6])
        func r(_ oid: OID, _ refs: [OID]) -> Record { Record(oid: oid, data: [1], references: refs) }
        try storage.commit([r(root, [a]), r(a, [b]), r(b, [a]), r(c, [d]), r(d, [c, e]), r(e, []), r(f, [f])])
        _ = try storage.sync()
        // root → a ⇄ b is live; c ⇄ d → e and f → f (a self-loop is no reference) are not.
        #expect(try storage.storedOIDs() == [root, a, b, c, d, e])
        let report = try storage.collectCycles()
        #expect(report.collected == 3)
        #expect(try storage.storedOIDs() == [root, a, b])
        #expect(Set(try storage.sync()) == [c, d, e])
        #expect(try storage.verify().isClean)
        #expect(try storage.collectCycles().collected == 0)
        let last = try #require(try storage.lastCycleCollection())
        #expect(last.collected == 0 && last.marked == 3)
    }

    /// What `durus stats` reads: the last drain of the garbage queue, a cycle
    /// collection's progress while it runs (polled from another thread), and
    /// its figures after; `onCollection` hears each collection once.
    @Test func reportsCollectionsAndCycleProgress() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let events = Mutex<[BerkeleyDBStorage.CollectionEvent]>([])
        let storage = try openStore(directory.path) { configuration in
            configuration.onCollection = { event in events.withLock { $0.append(event) } }
        }
        defer { try? storage.close() }
        #expect(try storage.lastGarbageCollection() == nil)
        #expect(try storage.cycleCollectionProgress() == nil)
        let root = try storage.newOID()
        // The root → a chain of 60,000 (marking takes a while); a separate
        // chain of 1,000 dropped at once; a garbage ring of 500.
        let live = try storage.newOIDs(count: 60_000)
        try storage.commit(live.enumerated().map { index, oid in
            Record(oid: oid, data: [2], references: index + 1 < live.count ? [live[index + 1]] : [])
        } + [Record(oid: root, data: [0], references: [live[0]])])
        let chain = try storage.newOIDs(count: 1_000)
        try storage.commit(chain.enumerated().map { index, oid in
            Record(oid: oid, data: [3], references: index + 1 < chain.count ? [chain[index + 1]] : [])
        } + [Record(oid: root, data: [0], references: [live[0], chain[0]])])
        let ring = try storage.newOIDs(count: 500)
        try storage.commit(ring.enumerated().map { index, oid in
            Record(oid: oid, data: [4], references: [ring[(index + 1) % ring.count]])
        } + [Record(oid: root, data: [0], references: [live[0], ring[0]])])   // drops the chain
        let drained = try #require(try storage.lastGarbageCollection())
        #expect(drained.collected == 1_000)
        #expect(abs(drained.finished.timeIntervalSinceNow) < 60)
        try storage.commit([Record(oid: root, data: [0], references: [live[0]])])   // the ring leaks
        #expect(try storage.lastGarbageCollection()?.collected == 1_000, "a drain that deleted nothing is not recorded")

        let report = Mutex<Result<BerkeleyDBStorage.CycleCollectionReport, any Error>?>(nil)
        let collector = Thread {
            let result = Result { try storage.collectCycles(batchSize: 100) }
            report.withLock { $0 = result }
        }
        collector.start()
        var seen: [BerkeleyDBStorage.CycleCollectionProgress] = []
        var polls = 0
        while report.withLock({ $0 == nil }) {
            polls += 1
            if let progress = try storage.cycleCollectionProgress() { seen.append(progress) }
            usleep(2_000)
        }
        let finished = try #require(report.withLock { $0 }).get()
        #expect(finished.collected == 500 && finished.marked == 60_001)
        #expect(seen.contains { $0.phase == .marking && $0.isRunning && $0.processID == getpid() }, "\(seen.count) of \(polls) polls saw progress")
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.marked <= $1.marked || $0.phase != $1.phase })
        #expect(seen.allSatisfy { $0.phase == .marking || $0.unreachable == 500 })
        #expect(try storage.cycleCollectionProgress() == nil)
        let last = try #require(try storage.lastCycleCollection())
        #expect(last.marked == finished.marked && last.collected == 500)
        #expect(abs(last.finished.timeIntervalSinceNow) < 60)

        let heard = events.withLock { $0 }
        // The sweep's cascade may hand ring members to an ordinary drain too.
        #expect(heard.count >= 2, "\(heard)")
        if case .garbage(let first)? = heard.first { #expect(first.collected == drained.collected) } else { Issue.record("no garbage event first") }
        if case .cycles(let cycles)? = heard.last { #expect(cycles.collected == finished.collected && cycles.marked == finished.marked) } else { Issue.record("no cycles event last") }
    }

    /// `collectCyclesAfterBytes` (Durus's `gcbytes`, embedded): a garbage
    /// cycle stays until commits have stored that many bytes, then a
    /// background run collects it and sync names its members.
    @Test func collectsCyclesAfterTheConfiguredBytes() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.path) { $0.collectCyclesAfterBytes = 20_000 }
        defer { try? storage.close() }
        let oids = try storage.newOIDs(count: 4)
        let (root, a, b, filler) = (oids[0], oids[1], oids[2], oids[3])
        try storage.commit([Record(oid: root, data: [0], references: [a]), Record(oid: a, data: [1], references: [b]),
                            Record(oid: b, data: [2], references: [a])])
        try storage.commit([Record(oid: root, data: [0], references: [])])   // a ⇄ b: nothing reaches them
        _ = try storage.sync()
        Thread.sleep(forTimeInterval: 0.2)
        let none = try storage.lastCycleCollection()
        #expect(storage.objectCount == 3 && none == nil, "not yet: too few bytes")
        for round in 0 ..< 5 {
            try storage.commit([Record(oid: filler, data: [UInt8](repeating: UInt8(round), count: 5_000), references: []),
                                Record(oid: root, data: [0], references: [filler])])
        }
        var collected: Set<OID> = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)   // only against a hang
        // The run's figures are recorded as it ends, just after its last sweep.
        while try storage.lastCycleCollection() == nil, clock.now < deadline { usleep(5_000) }
        collected.formUnion(try storage.sync())
        #expect(storage.objectCount == 2)
        #expect(collected.isSuperset(of: [a, b]))
        #expect(try storage.lastCycleCollection()?.collected == 2)
        #expect(storage.lastCollectionError == nil)
    }

    /// Random commits with cycles; every fifth step a collection runs on
    /// another thread while that step's commits go on (linking garbage back
    /// in, sometimes). After every step, everything reachable is stored; at
    /// the end, after a quiet collection, the store is exactly the reachable set.
    @Test(arguments: [21, 22] as [UInt64])
    func neverDeletesTheReachable(seed: UInt64) throws {
        let directory = TemporaryDirectory("cycles-\(seed)")
        defer { directory.remove() }
        let storage = try openStore(directory.path) { $0.collectionBatchSize = 7 }
        defer { try? storage.close() }
        var random = SeededRandom(seed: seed)
        var graph: [OID: Set<OID>] = [:]
        let root = try storage.newOID()
        try storage.commit([Record(oid: root, data: [0], references: [])])
        graph[root] = []
        var collectedByCycles = 0
        var conflicts = 0

        func absorb(_ collected: [OID]) {
            for oid in collected { graph[oid] = nil }
        }

        for step in 0 ..< 150 {
            let collector: Thread?
            let finished = Mutex<CycleCollectionReportBox?>(nil)
            if step % 5 == 4 {
                let thread = Thread {
                    let report = try? storage.collectCycles(batchSize: 3)
                    finished.withLock { $0 = CycleCollectionReportBox(report: report) }
                }
                thread.start()
                collector = thread
            } else {
                collector = nil
            }
            for _ in 0 ..< 4 {
                var changed: [OID: Set<OID>] = [:]
                func refs(_ oid: OID) -> Set<OID> { changed[oid] ?? graph[oid] ?? [] }
                let all = graph.keys.sorted()
                for _ in 0 ..< Int.random(in: 1 ... 4, using: &random) {
                    let roll = Int.random(in: 0 ..< 100, using: &random)
                    if roll < 45 || all.count < 8 {
                        let parent = all.randomElement(using: &random)!
                        let oid = try storage.newOID()
                        changed[oid] = Bool.random(using: &random) ? [parent] : []   // often a cycle back
                        changed[parent] = refs(parent).union([oid])
                    } else if roll < 80 {
                        // Link to any stored object, unreachable ones included.
                        let from = all.randomElement(using: &random)!, to = all.randomElement(using: &random)!
                        if from != to { changed[from] = refs(from).union([to]) }
                    } else {
                        let from = all.randomElement(using: &random)!
                        var current = refs(from)
                        if let victim = current.sorted().randomElement(using: &random) { current.remove(victim) }
                        changed[from] = current
                    }
                }
                do {
                    try storage.commit(changed.sorted { $0.key < $1.key }.map { oid, refs in
                        Record(oid: oid, data: [UInt8(step % 256)], references: refs)
                    })
                    for (oid, refs) in changed { graph[oid] = refs }
                } catch let conflict as ConflictError {
                    // It linked to an object the collector had just deleted: as a client would, sync and go on.
                    #expect(conflict.kind == .write)
                    conflicts += 1
                }
                absorb(try storage.sync())
                let stored = try storage.storedOIDs()
                let live = reachable(from: root, in: graph)
                #expect(stored.isSuperset(of: live), "step \(step): a reachable object was deleted")
            }
            if let collector {
                while !collector.isFinished { usleep(1_000) }
                let report = try #require(finished.withLock { $0?.report }, "step \(step): the collection failed")
                collectedByCycles += report.collected
            }
            absorb(try storage.sync())
        }
        try storage.collectCycles()
        absorb(try storage.sync())
        let live = reachable(from: root, in: graph)
        #expect(try storage.storedOIDs() == live)
        #expect(try storage.verify().isClean)
        #expect(collectedByCycles > 5, "the run must collect cycles while committing")
        print("seed \(seed): \(collectedByCycles) collected by cycle runs, \(conflicts) commits refused for a just-collected link")
    }
}

/// Carries a report out of the collector thread.
struct CycleCollectionReportBox: Sendable {
    var report: BerkeleyDBStorage.CycleCollectionReport?
}
