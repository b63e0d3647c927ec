@testable import Durus
import Dispatch
import Foundation
import Synchronization
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

/// A server's commits through ``CommitExchange/commitAfterExchange(_:later:)``:
/// the exchange ends once the records are in hand, the next session's
/// exchange begins while they are applied, and commits land one at a time
/// in the order their exchanges ended.
@Suite struct PipelinedCommitTests {
    /// A MemoryStorage whose commits can be held at a gate, and that records
    /// the order they reach it.
    final class GatedStorage: Storage, @unchecked Sendable {
        let inner = MemoryStorage()
        let gate = DispatchSemaphore(value: 0)
        let arrived = DispatchSemaphore(value: 0)
        let holding = Mutex(false)
        let order = Mutex<[[OID]]>([])
        var appliesCommitsAfterTheExchange: Bool { true }

        func load(_ oid: OID) throws -> Record { try inner.load(oid) }
        func newOID() throws -> OID { try inner.newOID() }
        func newOIDs(count: Int) throws -> [OID] { try inner.newOIDs(count: count) }
        func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
            if holding.withLock({ $0 }) {
                arrived.signal()
                gate.wait()
            }
            order.withLock { $0.append(records.map(\.oid)) }
            try inner.commit(records, handleInvalidations: handleInvalidations)
        }
        /// The OIDs of each batch the hub handed over, in order.
        let batches = Mutex<[[[OID]]]>([])
        func commitAwaitingFlush(batch: [[Record]]) -> [Result<PendingFlush?, any Error>] {
            batches.withLock { $0.append(batch.map { $0.map(\.oid) }) }
            return batch.map { records in Result { try commit(records, handleInvalidations: { _ in }); return nil } }
        }
        func sync() throws -> [OID] { try inner.sync() }
        func pack() throws { try inner.pack() }
        func forEachRecord(_ body: (Record) throws -> Void) throws { try inner.forEachRecord(body) }
        func close() throws { try inner.close() }
    }

    /// Begins `session`'s exchange and waits for it.
    func exchange(_ session: SessionStorage) throws -> CommitExchange {
        let granted = Mutex<Result<CommitExchange, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        session.beginExchange { result in
            granted.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success else { throw DurusError.closed }
        return try granted.withLock { $0! }.get()
    }

    /// A is held in the storage after its exchange ended: B's exchange is
    /// granted meanwhile and hears of A's OID (which B cannot load while A
    /// is in flight), B's commit waits its turn, and both land in order. B
    /// is not told of A's OID a second time; C, which had no exchange,
    /// hears of both.
    @Test func theNextExchangeBeginsWhileACommitIsApplied() throws {
        let storage = GatedStorage()
        let hub = SessionHub(storage: storage)
        let (a, b, c) = (hub.openSession(), hub.openSession(), hub.openSession())
        let x = try a.newOID(), y = try b.newOID()
        try a.commit([Record(oid: x, data: [0], references: [])], handleInvalidations: { _ in })
        _ = try b.sync()
        _ = try c.sync()

        storage.holding.withLock { $0 = true }
        let first = try exchange(a)
        let aOutcome = Mutex<Result<PendingFlush?, any Error>?>(nil)
        let aThread = Thread {
            let before = pthread_self()
            first.commitAfterExchange([Record(oid: x, data: [1], references: [])]) { apply in
                #expect(pthread_equal(pthread_self(), before) != 0)  // nothing before it: its turn is now
                let outcome = apply()
                aOutcome.withLock { $0 = outcome }
            }
        }
        aThread.start()
        #expect(storage.arrived.wait(timeout: .now() + 10) == .success)
        storage.holding.withLock { $0 = false }

        let second = try exchange(b)              // granted while A is applied
        #expect(second.invalidations == [x])
        #expect(throws: ConflictError.self) { try b.load(x) }
        let queued = Mutex<(@Sendable () -> Result<PendingFlush?, any Error>)?>(nil)
        second.commitAfterExchange([Record(oid: y, data: [2], references: [x])]) { apply in
            queued.withLock { $0 = apply }
        }
        #expect(queued.withLock { $0 } == nil)    // A is still being applied

        storage.gate.signal()
        let deadline = ContinuousClock.now + .seconds(10)
        while queued.withLock({ $0 }) == nil && ContinuousClock.now < deadline { usleep(1_000) }
        let apply = try #require(queued.withLock { $0 })
        #expect(throws: Never.self) { try apply().get() }
        while aOutcome.withLock({ $0 }) == nil && ContinuousClock.now < deadline { usleep(1_000) }
        #expect(throws: Never.self) { try aOutcome.withLock { $0 }?.get() }

        #expect(storage.order.withLock { $0 } == [[x], [x], [y]])
        #expect(try b.sync() == [])               // told of x by its exchange
        #expect(Set(try c.sync()) == [x, y])
        #expect(try c.load(x).data == [1])
        #expect(try c.load(y).references == [x])
    }

    /// An in-process commit (``SessionStorage/commit(_:handleInvalidations:)``)
    /// after a server commit that is still being applied waits for it: it
    /// hears of its OID and lands after it.
    @Test func anInProcessCommitLandsAfterTheServerCommitBeforeIt() throws {
        let storage = GatedStorage()
        let hub = SessionHub(storage: storage)
        let (a, b) = (hub.openSession(), hub.openSession())
        let x = try a.newOID(), y = try b.newOID()
        storage.holding.withLock { $0 = true }
        let first = try exchange(a)
        let applied = DispatchSemaphore(value: 0)
        Thread {
            first.commitAfterExchange([Record(oid: x, data: [1], references: [])]) { apply in _ = apply() }
            applied.signal()
        }.start()
        #expect(storage.arrived.wait(timeout: .now() + 10) == .success)
        storage.holding.withLock { $0 = false }
        let heard = Mutex<[OID]>([])
        let committed = DispatchSemaphore(value: 0)
        Thread {
            try? b.commit([Record(oid: y, data: [2], references: [x])]) { oids in heard.withLock { $0 += oids } }
            committed.signal()
        }.start()
        #expect(committed.wait(timeout: .now() + 0.2) == .timedOut)   // it waits for A to land
        storage.gate.signal()
        #expect(applied.wait(timeout: .now() + 10) == .success)
        #expect(committed.wait(timeout: .now() + 10) == .success)
        #expect(heard.withLock { $0 } == [x])
        #expect(storage.order.withLock { $0 } == [[x], [y]])
    }

    /// While A's commit is held in the storage, B, C and D end their
    /// exchanges: when A has landed, B's turn applies all three, in exchange
    /// order, as one batch. C's commit is refused (it references an object
    /// that was never stored) and only C hears so: B and D land, A hears of
    /// B's and D's OIDs and not C's, and C and D find their outcomes when
    /// their turns come.
    @Test func commitsWaitingBehindOneLandAsOneBatch() throws {
        let storage = GatedStorage()
        let hub = SessionHub(storage: storage)
        let (a, b, c, d) = (hub.openSession(), hub.openSession(), hub.openSession(), hub.openSession())
        let x = try a.newOID(), y = try b.newOID(), z = try c.newOID(), w = try d.newOID()
        let missing = try c.newOID()   // handed out, never stored
        storage.holding.withLock { $0 = true }
        let first = try exchange(a)
        let aLanded = DispatchSemaphore(value: 0)
        Thread {
            first.commitAfterExchange([Record(oid: x, data: [1], references: [])]) { apply in _ = apply() }
            aLanded.signal()
        }.start()
        #expect(storage.arrived.wait(timeout: .now() + 10) == .success)
        storage.holding.withLock { $0 = false }

        let turns = Mutex<[String: @Sendable () -> Result<PendingFlush?, any Error>]>([:])
        for (name, session, record) in [("b", b, Record(oid: y, data: [2], references: [])),
                                        ("c", c, Record(oid: z, data: [3], references: [missing])),
                                        ("d", d, Record(oid: w, data: [4], references: []))] {
            try exchange(session).commitAfterExchange([record]) { apply in turns.withLock { $0[name] = apply } }
        }
        storage.gate.signal()
        #expect(aLanded.wait(timeout: .now() + 10) == .success)
        func turn(_ name: String) throws -> @Sendable () -> Result<PendingFlush?, any Error> {
            let deadline = ContinuousClock.now + .seconds(10)
            while turns.withLock({ $0[name] }) == nil && ContinuousClock.now < deadline { usleep(1_000) }
            return try #require(turns.withLock { $0[name] })
        }
        #expect(throws: Never.self) { try turn("b")().get() }
        #expect(throws: ConflictError.self) { try turn("c")().get() }
        #expect(throws: Never.self) { try turn("d")().get() }

        #expect(storage.batches.withLock { $0 } == [[[x]], [[y], [z], [w]]])
        #expect(storage.order.withLock { $0 } == [[x], [y], [z], [w]])
        #expect(Set(try a.sync()) == [y, w])
        #expect(try a.load(y).data == [2] && a.load(w).data == [4])
        #expect(throws: DurusError.self) { try a.load(z) }
        #expect(hub.commitsLanded == 3)
    }
}
