import Durus
import Foundation

extension BerkeleyDBStorage {
    /// What one drain of the garbage queue did: from the batch that found
    /// garbage queued to the one that found the queue empty.
    public struct GarbageCollectionReport: Sendable, Equatable {
        /// Objects deleted, cascades included.
        public var collected: Int
        /// From the drain's first batch to its last.
        public var duration: Duration
        /// When the drain finished.
        public var finished: Date
    }

    /// How far a running (or interrupted) cycle collection has got, as
    /// recorded in the store so that another process (`durus stats`) can
    /// read it. Written when a phase starts, about once a second while
    /// marking, and with every sweep batch; removed when the run ends.
    public struct CycleCollectionProgress: Sendable, Equatable {
        /// The passes of a run, in order.
        public enum Phase: String, Sendable {
            /// Objects reachable from the root are being marked.
            case marking
            /// Unmarked objects are being deleted.
            case sweeping
        }

        public var phase: Phase
        /// Objects marked reachable so far.
        public var marked: Int
        /// Objects found unreachable (known once marking is done).
        public var unreachable: Int
        /// Objects deleted so far.
        public var swept: Int
        /// When the run started.
        public var started: Date
        /// The process running it.
        public var processID: Int32
        /// False when that process is gone: the run was interrupted, and the
        /// next one starts over (nothing reachable was deleted).
        public var isRunning: Bool
    }

    /// A collection that finished, for ``Configuration/onCollection``.
    public enum CollectionEvent: Sendable {
        /// A drain of the garbage queue (after a commit, in the background, or at open).
        case garbage(GarbageCollectionReport)
        /// A run of the cycle collector.
        case cycles(CycleCollectionReport)
    }

    /// The last drain of the garbage queue that deleted anything, as recorded
    /// in the store; `nil` before the first.
    public func lastGarbageCollection() throws -> GarbageCollectionReport? {
        try reading { () throws in
            guard let fields = try metaFields("last-collection"), fields.count == 3,
                  let collected = Int(fields[0]), let seconds = Double(fields[1]), let finished = Double(fields[2])
            else { return nil }
            return GarbageCollectionReport(collected: collected, duration: .seconds(seconds),
                                           finished: Date(timeIntervalSince1970: finished))
        }
    }

    /// The cycle collection in progress, or the one a killed process left
    /// unfinished; `nil` when none.
    public func cycleCollectionProgress() throws -> CycleCollectionProgress? {
        try reading { () throws in
            guard let fields = try metaFields("cycle-collection-progress"), fields.count == 6,
                  let phase = CycleCollectionProgress.Phase(rawValue: String(fields[0])),
                  let marked = Int(fields[1]), let unreachable = Int(fields[2]), let swept = Int(fields[3]),
                  let started = Double(fields[4]), let pid = Int32(fields[5])
            else { return nil }
            let running = pid == getpid() ? cycleTracking.withLock { $0 != nil } : Self.processExists(pid)
            return CycleCollectionProgress(phase: phase, marked: marked, unreachable: unreachable, swept: swept,
                                           started: Date(timeIntervalSince1970: started), processID: pid,
                                           isRunning: running)
        }
    }

    func metaFields(_ key: String) throws -> [Substring]? {
        try meta.string(key, txn: nil)?.split(separator: " ")
    }

    func writeProgress(_ progress: CycleCollectionProgress, txn: Txn) throws {
        try meta.putString("cycle-collection-progress",
                           "\(progress.phase.rawValue) \(progress.marked) \(progress.unreachable) \(progress.swept) "
                               + "\(progress.started.timeIntervalSince1970) \(progress.processID)", txn: txn)
    }

    func writeLastCollection(_ report: GarbageCollectionReport, txn: Txn) throws {
        try meta.putString("last-collection",
                           "\(report.collected) \(report.duration.seconds) \(report.finished.timeIntervalSince1970)", txn: txn)
    }

    /// Whether a process of this id exists (one of another user's counts too).
    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
