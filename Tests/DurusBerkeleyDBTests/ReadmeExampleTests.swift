import Durus
import DurusBerkeleyDB
import Testing

/// The README's 30-second example, as written there (in a temporary directory).
@Test func readmeExampleRunsAsDocumented() throws {
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    let storage = try BerkeleyDBStorage(path: dir.file("bank.db"))
    let root = try storage.newOID()
    let child = try storage.newOID()
    try storage.commit([
        Record(oid: root, data: Array("root".utf8), references: [child]),
        Record(oid: child, data: Array("child".utf8), references: []),
    ])
    try storage.commit([Record(oid: root, data: Array("root".utf8), references: [])])
    #expect("\(try storage.sync())" == "[OID(1)]")
    #expect(try storage.verify().isClean)
    try storage.close()
}
