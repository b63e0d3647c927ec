// A helper process for the Berkeley DB tests: things that need a process of
// their own (to be killed with SIGKILL, or to open a store another process holds).
//
//   durus-crash-child commit-loop DIR DURABILITY [background]
//                                                  commits forever, printing "ack N" after each
//                                                  (and, collecting in the background, "queued N")
//   durus-crash-child read DIR                     opens read-only and reports what it sees
//   durus-crash-child migrate SRC DST              migrates store SRC into DST, printing "phase N" as it goes
//   durus-crash-child backup DIR DEST              opens DIR read-only and backs it up into DEST
//   durus-crash-child cycles DIR                   one thread runs the cycle collector over and over while
//                                                  another keeps relinking a graph full of cycles
//   durus-crash-child connections DIR              four threads, a Connection each, commit with full
//                                                  durability forever, printing "ack T N" (thread T's
//                                                  counter committed as N)
//   durus-crash-child counters DIR                 prints "value T N" for each thread's counter, "clean B"
import Durus
import DurusBerkeleyDB
import Foundation

/// Writes a line straight to standard output (no buffer a kill could lose).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: durus-crash-child commit-loop DIR DURABILITY | read DIR") }

/// The root's data: the number of the commit that wrote it, and the head of
/// the chain it currently holds (0 when none).
func rootData(commit: UInt64, chain: OID) -> [UInt8] {
    withUnsafeBytes(of: commit.bigEndian) { Array($0) } + chain.bytes
}

func decodeRoot(_ record: Record) -> (commit: UInt64, chain: OID) {
    let data = Array(record.data)
    return (OID(bytes: data[0 ..< 8])!.rawValue, OID(bytes: data[8 ..< 16])!)
}

switch arguments[1] {
case "commit-loop":
    guard arguments.count >= 4, let durability = Durability(rawValue: arguments[3]) else { fail("bad arguments") }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.collectsInBackground = arguments.count > 4 && arguments[4] == "background"
    configuration.durability = durability
    configuration.cacheSize = 8 << 20
    configuration.collectionBatchSize = 16
    configuration.checkpointInterval = .milliseconds(50)
    configuration.logFileSize = 1 << 20
    configuration.logBufferSize = 256 << 10
    do {
        let storage = try BerkeleyDBStorage(path: arguments[2], configuration: configuration)
        var commit: UInt64 = 0
        var chain = OID(0)
        var keepers: [OID] = []
        if let root = try? storage.load(.root) {
            (commit, chain) = decodeRoot(root)
            keepers = root.references.filter { $0 != chain }.sorted()
        } else {
            _ = try storage.newOID()
        }
        say("ready \(commit)")
        while true {
            commit += 1
            var batch: [Record] = []
            let keeper = try storage.newOID()
            batch.append(Record(oid: keeper, data: rootData(commit: commit, chain: 0), references: []))
            keepers.append(keeper)
            if keepers.count > 8 { keepers.removeFirst(keepers.count - 8) }
            if commit % 7 == 0 {
                // A 60-object chain, dropped three commits later: its collection
                // cascades through several bounded batches, where kills land too.
                let nodes = try storage.newOIDs(count: 60)
                for (i, node) in nodes.enumerated() {
                    batch.append(Record(oid: node, data: [UInt8(i)], references: i + 1 < nodes.count ? [nodes[i + 1]] : []))
                }
                chain = nodes[0]
            } else if commit % 7 == 3 {
                chain = 0
            }
            let refs = keepers + (chain == 0 ? [] : [chain])
            batch.append(Record(oid: .root, data: rootData(commit: commit, chain: chain), references: refs))
            try storage.commit(batch)
            say("ack \(commit)")
            // What the background collector still has to do as the next commit starts.
            if configuration.collectsInBackground { say("queued \(try storage.pendingGarbageCount())") }
        }
    } catch {
        fail("error: \(error)")
    }
case "read":
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.readOnly = true
    do {
        let storage = try BerkeleyDBStorage(path: arguments[2], configuration: configuration)
        say("objects \(storage.objectCount)")
        say("root \(Array(try storage.load(.root).data))")
        do {
            _ = try storage.newOID()
            say("write allowed")
        } catch DurusError.readOnly {
            say("write refused")
        }
        say("clean \(try storage.verify().isClean)")
        try storage.close()
    } catch {
        fail("error: \(error)")
    }
case "migrate":
    guard arguments.count == 4 else { fail("bad arguments") }
    do {
        var sourceConfiguration = BerkeleyDBStorage.Configuration()
        sourceConfiguration.readOnly = true
        let source = try BerkeleyDBStorage(path: arguments[2], configuration: sourceConfiguration)
        var configuration = BerkeleyDBStorage.Configuration.migration
        configuration.durability = .writeNoSync
        configuration.cacheSize = 8 << 20
        let target = try BerkeleyDBStorage(path: arguments[3], configuration: configuration)
        try target.migrate(from: source, batchSize: 500) { say("\($0.phase.rawValue) \($0.records)") }
        try target.close()
        try source.close()
    } catch {
        fail("error: \(error)")
    }
case "backup":
    guard arguments.count == 4 else { fail("bad arguments") }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.readOnly = true
    configuration.createIfMissing = false
    do {
        let storage = try BerkeleyDBStorage(path: arguments[2], configuration: configuration)
        try storage.backup(to: arguments[3])
        try storage.close()
        say("backed up")
    } catch {
        fail("error: \(error)")
    }
case "cycles":
    guard arguments.count == 3 else { fail("bad arguments") }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .writeNoSync
    configuration.cacheSize = 16 << 20
    configuration.collectionBatchSize = 64
    configuration.checkpointInterval = .milliseconds(100)
    configuration.logFileSize = 1 << 20
    do {
        let storage = try BerkeleyDBStorage(path: arguments[2], configuration: configuration)
        try mutateWhileCollecting(storage)
    } catch {
        fail("error: \(error)")
    }
case "connections", "counters":
    guard arguments.count == 3 else { fail("bad arguments") }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .full
    configuration.cacheSize = 8 << 20
    configuration.checkpointInterval = .milliseconds(50)
    configuration.logFileSize = 1 << 20
    do {
        let storage = try BerkeleyDBStorage(path: arguments[2], configuration: configuration)
        let database = try Database(storage: storage, root: Counters.self, types: [Counter.self])
        if arguments[1] == "counters" {
            let connection = try database.open()
            for (thread, counter) in try connection.root(Counters.self).state.all.enumerated() {
                say("value \(thread) \(counter.state.value)")
            }
            say("clean \(try storage.verify().isClean)")
            break
        }
        try database.transaction { connection in
            let root = try connection.root(Counters.self)
            while root.state.all.count < 4 { root.state.all.append(Counter()) }
        }
        say("ready")
        let threads = (0 ..< 4).map { thread in
            Thread {
                do {
                    let connection = try database.open()
                    let counter = try connection.root(Counters.self).state.all[thread]
                    while true {
                        counter.state.value += 1
                        try connection.commit()
                        say("ack \(thread) \(counter.state.value)")
                    }
                } catch {
                    fail("error: \(error)")
                }
            }
        }
        for thread in threads { thread.start() }
        while true { sleep(1) }
    } catch {
        fail("error: \(error)")
    }
default:
    fail("unknown mode \(arguments[1])")
}

/// The `cycles` mode. The store starts as the root → 50 hubs → 4 rings of
/// 100 objects each (hubs also reference each other: more cycles). The
/// mutator then keeps relinking it, one commit at a time: a hub gains or
/// loses a reference (dropping hubs and rings: garbage cycles), a new ring
/// or hub is hung from a hub, or a ring that was dropped is brought back by
/// storing every member again — a client with the ring in its cache would
/// do that, and it is what the collector's tracking of commits made during
/// marking is for. It only ever references what is reachable as of its last
/// commit or what it stores in the same commit, so any write conflict (a
/// reference to a deleted object) means the collector deleted something
/// reachable. Meanwhile another thread runs `collectCycles` back to back.
/// Prints "ready" once the graph is there.
func mutateWhileCollecting(_ storage: BerkeleyDBStorage) throws {
    var hubs: [OID: [OID]] = [:]
    var rings: [OID: [OID]] = [:]
    func newRing(_ size: Int) throws -> [Record] {
        let members = try storage.newOIDs(count: size)
        rings[members[0]] = members
        return members.enumerated().map { index, oid in
            Record(oid: oid, data: oid.bytes, references: [members[(index + 1) % members.count]])
        }
    }
    if (try? storage.load(.root)) == nil {
        _ = try storage.newOID()
        let hubOIDs = try storage.newOIDs(count: 50)
        // From the last hub back, so each references one already stored;
        // the last then closes the cycle of hubs.
        for index in hubOIDs.indices.reversed() {
            let hub = hubOIDs[index]
            var batch: [Record] = []
            var refs = index + 1 < hubOIDs.count ? [hubOIDs[index + 1]] : []
            for _ in 0 ..< 4 {
                let ring = try newRing(100)
                batch += ring
                refs.append(ring[0].oid)
            }
            hubs[hub] = refs
            try storage.commit(batch + [Record(oid: hub, data: hub.bytes, references: refs)]
                + [Record(oid: .root, data: [0], references: Array(hubOIDs[index...]))])
        }
        let last = hubOIDs[hubOIDs.count - 1]
        hubs[last] = [hubOIDs[0]] + hubs[last]!
        try storage.commit([Record(oid: last, data: last.bytes, references: hubs[last]!)])
        hubs[.root] = hubOIDs
    } else {
        // Rebuild the model from the store: hubs are what the root reaches
        // outside rings; a ring is a run of objects that each reference one.
        var records: [OID: [OID]] = [:]
        try storage.forEachRecord { records[$0.oid] = $0.references }
        var seen: Set<OID> = [.root]
        var stack: [OID] = [.root]
        while let oid = stack.popLast() {
            guard let refs = records[oid] else { continue }
            let isHub = oid == .root || refs.count != 1 || !isRingMember(oid, records)
            if isHub {
                hubs[oid] = refs
                for ref in refs where seen.insert(ref).inserted { stack.append(ref) }
            } else if rings[oid] == nil {
                var members = [oid]
                var next = refs[0]
                while next != oid, let after = records[next], after.count == 1 {
                    members.append(next)
                    next = after[0]
                }
                if next == oid { rings[oid] = members }
            }
        }
    }
    var liveHubs: [OID] = []
    var liveRings: Set<OID> = []
    func findLive() {
        var seen: Set<OID> = [.root]
        var stack: [OID] = [.root]
        liveRings = []
        while let oid = stack.popLast() {
            for ref in hubs[oid] ?? [] {
                if rings[ref] != nil { liveRings.insert(ref) } else if hubs[ref] != nil, seen.insert(ref).inserted { stack.append(ref) }
            }
        }
        liveHubs = Array(seen)
    }
    findLive()
    let collector = Thread {
        var run = 0
        while true {
            run += 1
            say("run \(run)")
            do {
                let report = try storage.collectCycles(batchSize: 50)
                say("collected \(report.collected) marked \(report.marked)")
            } catch {
                fail("collector error: \(error)")
            }
        }
    }
    collector.start()
    say("ready \(liveHubs.count) hubs, \(liveRings.count) rings")
    var random = SystemRandomNumberGenerator()
    func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    while true {
        let hub = pick(liveHubs)
        var refs = hubs[hub] ?? []
        var batch: [Record] = []
        switch random.next() % 100 {
        case 0 ..< 30:
            if refs.count >= 6 { refs.remove(at: Int(random.next() % UInt64(refs.count))) }
            refs.append(random.next() % 2 == 0 || liveRings.isEmpty ? pick(liveHubs) : pick(Array(liveRings)))
        case 30 ..< 55:
            if !refs.isEmpty { refs.remove(at: Int(random.next() % UInt64(refs.count))) }
        case 55 ..< 70:
            let ring = try newRing(Int(5 + random.next() % 20))
            batch += ring
            refs.append(ring[0].oid)
        case 70 ..< 80:
            let newHub = try storage.newOID()
            let newRefs = liveRings.isEmpty ? [] : [pick(Array(liveRings))]
            hubs[newHub] = newRefs
            batch.append(Record(oid: newHub, data: newHub.bytes, references: newRefs))
            refs.append(newHub)
        default:
            let dropped = rings.keys.filter { !liveRings.contains($0) }
            guard !dropped.isEmpty, let members = rings[pick(dropped)] else { continue }
            for (index, oid) in members.enumerated() {
                batch.append(Record(oid: oid, data: oid.bytes, references: [members[(index + 1) % members.count]]))
            }
            refs.append(members[0])
        }
        if hub == .root && refs.isEmpty { continue }
        hubs[hub] = refs
        batch.append(Record(oid: hub, data: hub == .root ? [0] : hub.bytes, references: refs))
        try storage.commit(batch)
        findLive()
        usleep(1_000)
    }
}

/// Whether `oid` lies on a cycle of objects that each reference exactly one.
func isRingMember(_ oid: OID, _ records: [OID: [OID]]) -> Bool {
    var next = oid
    for _ in 0 ..< 200 {
        guard let refs = records[next], refs.count == 1 else { return false }
        next = refs[0]
        if next == oid { return true }
    }
    return false
}

/// The `connections` mode's root: one counter per committing thread.
final class Counters: Persistent<Counters.State> {
    struct State: PersistentState { var all: [Counter] = [] }
}

final class Counter: Persistent<Counter.State> {
    struct State: PersistentState { var value = 0 }
}
