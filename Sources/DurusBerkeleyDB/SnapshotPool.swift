import CBerkeleyDB
import Synchronization

/// Read-only snapshot transactions kept between reads, so that loads in a
/// row, with no commit between them, share one instead of beginning and
/// committing one each.
///
/// A snapshot is current while no write transaction committed after it
/// began: ``advance()`` follows every commit, so a read that starts after a
/// commit returned never sees the store as it was before it. Idle snapshots
/// end before each write transaction begins (``endIdle()``) and stale ones
/// as they are found, so the pool never makes a write keep old page versions.
final class SnapshotPool: @unchecked Sendable {
    /// A transaction handle, used by one thread at a time: passed between
    /// threads only through the pool's lock.
    struct Snapshot: @unchecked Sendable {
        let txn: Txn
        let generation: Int
    }

    private let env: UnsafeMutablePointer<DB_ENV>
    private let idle = Mutex<[Snapshot]>([])
    /// Counts write transactions committed.
    private let generation = Atomic<Int>(0)
    /// The most snapshots kept idle (one a thread reading at once, about).
    private static let capacity = 8

    init(env: UnsafeMutablePointer<DB_ENV>) {
        self.env = env
    }

    /// A current snapshot, reused or begun now; hand it back with
    /// ``giveBack(_:)``, or ``discard(_:)`` after a failed read.
    func take() throws -> Snapshot {
        var stale: [Snapshot] = []
        let (found, now) = idle.withLock { idle -> (Snapshot?, Int) in
            let now = generation.load(ordering: .acquiring)
            while let last = idle.popLast() {
                if last.generation == now { return (last, now) }
                stale.append(last)
            }
            return (nil, now)
        }
        for snapshot in stale { end(snapshot) }
        if let found { return found }
        // Labelled with the count read before it began: at worst it passes
        // for older than it is, and is ended sooner.
        var txn: Txn?
        try Engine.check(durus_txn_begin(env, &txn, durus_DB_TXN_SNAPSHOT), "begin a snapshot")
        return Snapshot(txn: txn!, generation: now)
    }

    /// Keeps `snapshot` for the next read while it is current and there is
    /// room; ends it otherwise.
    func giveBack(_ snapshot: Snapshot) {
        let kept = idle.withLock { idle in
            guard snapshot.generation == generation.load(ordering: .acquiring), idle.count < Self.capacity else {
                return false
            }
            idle.append(snapshot)
            return true
        }
        if !kept { end(snapshot) }
    }

    /// Ends a snapshot whose read failed.
    func discard(_ snapshot: Snapshot) {
        _ = durus_txn_abort(snapshot.txn)
    }

    private func end(_ snapshot: Snapshot) {
        _ = durus_txn_commit(snapshot.txn, 0)
    }

    /// Called before each write transaction begins: the idle snapshots end,
    /// so that its writes need not keep the pages' old versions for them
    /// (a snapshot open during a write makes Berkeley DB copy each page it
    /// changes, and the copies take room in the cache).
    func endIdle() {
        for snapshot in idle.withLock({ Self.takeAll(&$0) }) { end(snapshot) }
    }

    /// Called after each write transaction committed: every snapshot begun
    /// before is stale, and the idle ones end now.
    func advance() {
        let stale = idle.withLock { idle in
            generation.add(1, ordering: .releasing)
            return Self.takeAll(&idle)
        }
        for snapshot in stale { end(snapshot) }
    }

    private static func takeAll(_ idle: inout [Snapshot]) -> [Snapshot] {
        var taken: [Snapshot] = []
        swap(&taken, &idle)
        return taken
    }
}
