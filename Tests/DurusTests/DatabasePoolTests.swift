@testable import Durus
import Testing

final class PoolRoot: Persistent<PoolRoot.State> {
    struct State: PersistentState { var name = "first" }
}

/// `Database.transaction` parks its connections between calls.
@Suite struct DatabasePoolTests {
    /// A parked connection hears of every object others commit, and may wait
    /// unused for any number of commits: it collects at most
    /// `Database.parkedInvalidationLimit` of them, is then dropped, and the
    /// next transaction gets a fresh connection that reads the store as it
    /// is; the dropped session is closed.
    @Test func aParkedConnectionCollectsBoundedInvalidations() throws {
        let db = try Database(storage: MemoryStorage(), root: PoolRoot.self)
        #expect(try db.transaction { conn in try conn.root(PoolRoot.self).state.name } == "first")
        #expect(db.parkedPending == [0])
        let writer = db.hub.openSession()
        func commit(_ count: Int) throws {
            for _ in 0 ..< count / 1000 {
                let oids = try (0 ..< 1000).map { _ in try writer.newOID() }
                try writer.commit(oids.map { Record(oid: $0, data: [1], references: []) }, handleInvalidations: { _ in })
            }
        }
        let limit = Database.parkedInvalidationLimit
        try commit(limit - 1000)
        #expect(db.parkedPending == [limit - 1000], "the parked connection hears of every commit")
        try commit(2000)
        #expect(db.parkedPending == [0], "over the limit: dropped, nothing kept")
        #expect(db.hub.sessionCount == 2, "the writer and the dropped parked session")

        let other = try db.open()
        try other.root(PoolRoot.self).state.name = "second"
        try other.commit()
        #expect(try db.transaction { conn in try conn.root(PoolRoot.self).state.name } == "second")
        #expect(db.parkedPending == [0])
        #expect(db.hub.sessionCount == 3, "the writer, `other` and the fresh parked session: the dropped one is closed")
    }

    /// The pool starts empty, even when the database had to create the root:
    /// a program that only ever calls `open()` has no parked session that
    /// hears of every commit. The first transaction reads the root as stored.
    @Test func theRootIsCreatedWithoutParkingAConnection() throws {
        let db = try Database(storage: MemoryStorage(), root: PoolRoot.self)
        #expect(db.hub.sessionCount == 0)
        #expect(db.parkedPending == [])
        let other = try db.open()
        try other.root(PoolRoot.self).state.name = "stored"
        try other.commit()
        #expect(try db.transaction { conn in try conn.root(PoolRoot.self).state.name } == "stored")
        #expect(db.parkedPending == [0])
    }

    /// A connection taken from the pool has no limit: a transaction that
    /// runs while others commit more than the parked limit is not dropped.
    @Test func aConnectionInUseHasNoLimit() throws {
        let db = try Database(storage: MemoryStorage(), root: PoolRoot.self)
        let writer = db.hub.openSession()
        let name = try db.transaction { conn -> String in
            let root = try conn.root(PoolRoot.self)
            for _ in 0 ... Database.parkedInvalidationLimit / 1000 {
                let oids = try (0 ..< 1000).map { _ in try writer.newOID() }
                try writer.commit(oids.map { Record(oid: $0, data: [1], references: []) }, handleInvalidations: { _ in })
            }
            root.state.name = "changed while others committed"
            return root.state.name
        }
        #expect(name == "changed while others committed")
        #expect(db.parkedPending == [0])
    }
}
