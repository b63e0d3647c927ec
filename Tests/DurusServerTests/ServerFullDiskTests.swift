import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import DurusTestSupport
import Foundation
import Testing

/// The server's store on a file system that fills up (a real tmpfs, filled by
/// a ballast file). Protocol v1 has no status for a failed commit, so the
/// client whose commit meets the full disk is dropped; every other client
/// keeps loading, and once space is freed, clients commit again on the same
/// running server. With write-no-sync the dropped commit stored nothing.
/// With full durability it may have been applied and then failed its flush
/// (group commit flushes after applying): its fate is then unknown to its
/// client, as after a crash, and the store holds it or not, whole.
@Suite(.enabled(if: SmallDisk.isAvailable, "mounting a tmpfs needs root with CAP_SYS_ADMIN"))
struct ServerFullDiskTests {
    @Test(arguments: [Durability.writeNoSync, .full])
    func aCommitOnAFullDiskDropsOnlyItsClientAndLosesNothing(_ durability: Durability) throws {
        let disk = try SmallDisk(megabytes: 64)
        defer { disk.remove() }
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.cacheSize = 2 << 20
        configuration.maxLocks = 20_000
        configuration.logFileSize = 2 << 20
        configuration.durability = durability
        let path = disk.path + "/store"
        let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
        let server = try startServer(storage: storage)

        let writer = try server.client()
        let reader = try server.client()
        let root = try writer.newOID()
        var stored: [OID: [UInt8]] = [:]
        var inDoubt: (oid: OID, data: [UInt8])?
        func commit(_ client: ClientStorage, _ round: Int) throws {
            let oid = try client.newOID()
            let data = [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 3000)
            inDoubt = (oid, data)
            try client.commit([Record(oid: oid, data: data, references: []),
                               Record(oid: root, data: [UInt8(truncatingIfNeeded: round)], references: stored.keys.sorted() + [oid])])
            inDoubt = nil
            stored[oid] = data
        }
        for round in 0 ..< 20 { try commit(writer, round) }
        _ = try reader.sync()
        for (oid, data) in stored { #expect(try reader.load(oid).data.elementsEqual(data)) }

        try disk.fill()
        // A commit that fits in the log's last page may still go through; one soon meets the full disk.
        var round = 20
        var failure: (any Error)?
        while failure == nil, round < 200 {
            do { try commit(writer, round) } catch { failure = error }
            round += 1
        }
        let refused = try #require(failure)
        let dropped = try #require(inDoubt, "the failed commit is known")
        #expect(refused is DurusError, "\(refused)")
        #expect(throws: DurusError.closed) { try writer.load(root) }
        // The reader was not dropped, and loads at once.
        _ = try reader.sync()
        for (oid, data) in stored { #expect(try reader.load(oid).data.elementsEqual(data)) }

        disk.freeSpace()
        let next = try server.client()
        for round in 200 ..< 205 { try commit(next, round) }
        #expect(try reader.sync().contains(root))
        #expect(try reader.load(root).references.count == stored.count)
        for client in [next, reader] { try client.close() }
        server.stop()
        try storage.close()

        let reopened = try BerkeleyDBStorage(path: path, configuration: configuration)
        defer { try? reopened.close() }
        var oids: Set<OID> = []
        try reopened.forEachRecord { oids.insert($0.oid) }
        if durability == .writeNoSync {
            #expect(oids == Set(stored.keys).union([root]))
        } else {
            // Stored whole or not at all (unreferenced since, it may be collected already).
            #expect(oids.subtracting([dropped.oid]) == Set(stored.keys).union([root]))
            if oids.contains(dropped.oid) { #expect(try reopened.load(dropped.oid).data.elementsEqual(dropped.data)) }
        }
        for (oid, data) in stored { #expect(try reopened.load(oid).data.elementsEqual(data)) }
        #expect(try reopened.verify().isClean)
    }
}
