import Dispatch
import DurusTestSupport
import Foundation
@testable import Durus
import Synchronization
import Testing

private final class Tally: Persistent<Tally.State> {
    struct State: PersistentState { var count = 0 }
    var count: Int { get { state.count } set { state.count = newValue } }
}

@Suite struct DatabaseCloseTests {
    /// Tried: `close()` while another thread's transaction is halfway
    /// through its body (it waits on a semaphore there), then new
    /// transactions, `open()` and a second `close()`. Survives: close waits
    /// for that transaction, which commits; afterwards the storage is
    /// closed (its own loads throw `closed`), new work throws
    /// `DurusError.closed`, and closing again does nothing.
    @Test func closeWaitsForRunningTransactionsThenClosesTheStorage() throws {
        let storage = MemoryStorage()
        let database = try Database(storage: storage, root: Tally.self)
        let inBody = DispatchSemaphore(value: 0), goOn = DispatchSemaphore(value: 0)
        let committed = Atomic(false)
        // Threads of their own: Dispatch's pool may not start a second
        // block while the first waits.
        let worker = startThread {
            do {
                try database.transaction { connection in
                    inBody.signal()
                    goOn.wait()
                    try connection.root(Tally.self).count += 1
                }
                committed.store(true, ordering: .relaxed)
            } catch {}
        }
        inBody.wait()
        let closed = Atomic(false)
        let closer = startThread {
            try? database.close()
            closed.store(true, ordering: .relaxed)
        }
        Thread.sleep(forTimeInterval: 0.1)
        let closedEarly = closed.load(ordering: .relaxed)
        #expect(!closedEarly, "close() returned while a transaction was running")
        goOn.signal()
        worker.wait()
        closer.wait()
        let (didCommit, didClose) = (committed.load(ordering: .relaxed), closed.load(ordering: .relaxed))
        #expect(didCommit)
        #expect(didClose)
        #expect(throws: DurusError.closed) { try storage.load(.root) }
        #expect(throws: DurusError.closed) { try database.transaction { _ in 1 } }
        #expect(throws: DurusError.closed) { try database.open() }
        try database.close()
    }
}
