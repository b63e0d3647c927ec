@testable import Durus
import Testing

/// The session layer under `Database` and the server, used directly.
@Suite struct SessionHubTests {
    /// A commit refused before it reached the storage (here: it stores an
    /// OID another session reserved) must not lose the invalidations its
    /// session had pending: the session's next sync still reports what
    /// others committed, and the reserved OID was stored by nobody.
    @Test func aRefusedCommitKeepsItsSessionsInvalidations() throws {
        let hub = SessionHub(storage: MemoryStorage())
        let (a, b, c) = (hub.openSession(), hub.openSession(), hub.openSession())
        let changed = try b.newOID()
        try b.commit([Record(oid: changed, data: [1], references: [])], handleInvalidations: { _ in })
        let reserved = try c.newOID()
        #expect(throws: DurusError.oidReserved(reserved)) {
            try a.commit([Record(oid: reserved, data: [2], references: [])], handleInvalidations: { _ in })
        }
        #expect(try a.sync() == [changed])
        #expect(throws: DurusError.keyNotFound(reserved)) { try a.load(reserved) }
    }
}
