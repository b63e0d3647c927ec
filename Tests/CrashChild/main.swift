// A helper process for the Berkeley DB tests: things that need a process of
// their own (to be killed with SIGKILL, or to open a store another process holds).
//
//   durus-crash-child commit-loop DIR DURABILITY [background]
//                                                  commits forever, printing "ack N" after each
//   durus-crash-child read DIR                     opens read-only and reports what it sees
//   durus-crash-child migrate SRC DST              migrates store SRC into DST, printing "phase N" as it goes
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
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.durability = .writeNoSync
        configuration.cacheSize = 8 << 20
        let target = try BerkeleyDBStorage(path: arguments[3], configuration: configuration)
        try target.migrate(from: source, batchSize: 500) { say("\($0.phase.rawValue) \($0.records)") }
        try target.close()
        try source.close()
    } catch {
        fail("error: \(error)")
    }
default:
    fail("unknown mode \(arguments[1])")
}
