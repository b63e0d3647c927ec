import Durus
import DurusTestSupport
import Foundation
import Testing

/// A Durus file on a file system that fills up (a real tmpfs, filled by a
/// ballast file): a commit that does not fit is refused with a typed error
/// and cut back off the file, so the file never holds a torn transaction.
@Suite(.enabled(if: SmallDisk.isAvailable, "mounting a tmpfs needs root with CAP_SYS_ADMIN"))
struct FileStorageFullDiskTests {
    @Test(arguments: [false, true])
    func commitsAreRefusedWhileTheDiskIsFullAndNothingIsLost(syncOnCommit: Bool) throws {
        let disk = try SmallDisk(megabytes: 8)
        defer { disk.remove() }
        let path = disk.path + "/data.durus"
        let options = FileStorage.Options(syncOnCommit: syncOnCommit)
        let storage = try FileStorage(path: path, options: options)
        let root = try storage.newOID()
        var stored: [OID: [UInt8]] = [:]
        /// A new object of 3,000 bytes and the root naming every object: true when stored.
        func attempt(_ round: Int) throws -> Bool {
            let oid = try storage.newOID()
            let data = [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 3000)
            do {
                try storage.commit([Record(oid: oid, data: data, references: []),
                                    Record(oid: root, data: [1], references: stored.keys.sorted() + [oid])])
                stored[oid] = data
                return true
            } catch DurusError.diskFull(let at, let message) {
                #expect(at == path)
                #expect(message.contains("No space left on device"))
                return false
            }
        }
        for round in 0 ..< 50 { #expect(try attempt(round)) }
        var size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int

        try disk.fill()
        var refused = 0
        for round in 50 ..< 150 {
            if try attempt(round) {
                size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            } else {
                refused += 1
                // Cut back to the last whole transaction.
                #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int == size)
            }
        }
        #expect(refused > 90, "only \(refused) of 100 commits met the full disk")
        for (oid, data) in stored { #expect(try storage.load(oid).data.elementsEqual(data)) }

        disk.freeSpace()
        for round in 150 ..< 160 { #expect(try attempt(round)) }
        try storage.close()

        // Opened without `repair`: a torn transaction would be an error here.
        let reopened = try FileStorage(path: path, options: .init(readOnly: true))
        defer { try? reopened.close() }
        #expect(try reopened.load(root).references.count == stored.count)
        for (oid, data) in stored { #expect(try reopened.load(oid).data.elementsEqual(data)) }
    }
}
