import CBerkeleyDB
import Durus
import Foundation
import Synchronization

extension BerkeleyDBStorage {
    /// What one run of the cycle collector did.
    public struct CycleCollectionReport: Sendable, Equatable {
        /// Objects found reachable from the root.
        public var marked = 0
        /// Unreachable objects deleted (cycle members and what hung from them).
        public var collected = 0
        /// How long the run took.
        public var duration: Duration = .zero
        /// When it finished.
        public var finished = Date(timeIntervalSince1970: 0)
    }

    /// The OIDs commits touch while a collection runs, in a temporary table.
    struct CycleTracking {
        let touched: Table
        /// A touch that could not be written: the run must not sweep.
        var failed = false
    }

    /// Called under the writer lock after every commit.
    func noteForCycleCollection(_ records: [Record]) {
        cycleTracking.withLock { tracking in
            guard let table = tracking?.touched else { return }
            do {
                for record in records {
                    try table.put(record.oid, [], txn: nil)
                    for ref in record.referenceSet { try table.put(ref, [], txn: nil) }
                }
            } catch {
                tracking?.failed = true
            }
        }
    }

    /// Collects garbage that reference counting cannot see: objects kept
    /// alive only by reference cycles.
    ///
    /// Marks everything reachable from the root in one snapshot, its marks in
    /// a temporary Berkeley DB table (not in memory), while loads and commits
    /// continue; every object a commit stores or references meanwhile is
    /// treated as live, and so is what it reaches. Then sweeps the unmarked
    /// in transactions of `batchSize`, each under the commit lock for only
    /// that batch; what they referenced is counted down and collected as
    /// usual. The OIDs collected reach clients through ``sync()``. A crash
    /// loses only the run's marks: nothing reachable is ever deleted, and the
    /// next run starts over. ``cycleCollectionProgress()`` tells how far a
    /// run has got, from any process.
    @discardableResult
    public func collectCycles(batchSize: Int = 1_000) throws -> CycleCollectionReport {
        try reading { () throws in
            try requireWritable()
            return try cycleCollector.withLock { _ in try runCycleCollection(batchSize: max(1, batchSize)) }
        }
    }

    private func runCycleCollection(batchSize: Int) throws -> CycleCollectionReport {
        try withTemporaryTables(["cycle-marks", "cycle-frontier", "cycle-doomed", "cycle-touched"]) { tables in
            try runCycleCollection(batchSize: batchSize, marks: tables[0], frontier: tables[1], doomed: tables[2], touched: tables[3])
        }
    }

    /// Marks from the root in `marks` (through `frontier`), lists the
    /// unmarked in `doomed`, and sweeps them in batches; what commits touch
    /// meanwhile is noted in `touched` and marked live before each batch.
    private func runCycleCollection(batchSize: Int, marks: Table, frontier: Table, doomed: Table,
                                    touched: Table) throws -> CycleCollectionReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report = CycleCollectionReport()
        // Tracking starts before the snapshot: any commit the snapshot misses is touched.
        cycleTracking.withLock { $0 = CycleTracking(touched: touched) }
        defer { cycleTracking.withLock { $0 = nil } }

        var progress = CycleCollectionProgress(phase: .marking, marked: 0, unreachable: 0, swept: 0, started: Date(),
                                               processID: getpid(), isRunning: true)
        try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in try writeProgress(progress, txn: txn) }
        var lastWritten = clock.now
        func markingProgress(_ marked: Int) throws {
            guard clock.now - lastWritten >= .seconds(1) else { return }
            progress.marked = marked
            try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in try writeProgress(progress, txn: txn) }
            lastWritten = clock.now
        }

        var doomedCount = 0
        try snapshot { txn in
            guard try records.exists(.root, txn: txn) else { return }
            report.marked = try markFrom([.root], marks: marks, frontier: frontier, txn: txn, progress: markingProgress)
            try records.scan(txn: txn) { key, _ in
                guard let oid = OID(bytes: key), oid != .root, try !marks.exists(oid, txn: nil) else { return true }
                try doomed.put(oid, [], txn: nil)
                doomedCount += 1
                return true
            }
        }
        progress.phase = .sweeping
        progress.marked = report.marked
        progress.unreachable = doomedCount
        try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in try writeProgress(progress, txn: txn) }
        while doomedCount > 0 {
            let batch = try doomed.firstOIDs(limit: batchSize, txn: nil)
            if batch.isEmpty { break }
            try writer.withLock { counters in
                guard cycleTracking.withLock({ $0?.failed == false }) else {
                    throw DurusError.corruptStore(path: path, reason: "the cycle collector lost track of a commit; nothing was swept")
                }
                // What commits touched since the last batch is live, with all it reaches now.
                let fresh = try touched.firstOIDs(limit: .max, txn: nil)
                for oid in fresh { _ = try touched.delete(oid, txn: nil) }
                report.marked += try markFrom(fresh, marks: marks, frontier: frontier, txn: nil)
                var freed: [OID] = []
                counters = try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in
                    freed = []
                    var result = counters
                    for oid in batch where try !marks.exists(oid, txn: nil) {
                        guard let bytes = try records.get(oid, txn: txn) else { continue }
                        try deleteObject(oid, bytes, counters: &result, txn: txn)
                        freed.append(oid)
                    }
                    try writeCounters(result, txn: txn)
                    try appendCommitLog(freed, &result, txn: txn)
                    var swept = progress
                    swept.marked = report.marked
                    swept.swept = report.collected + freed.count
                    try writeProgress(swept, txn: txn)
                    return result
                }
                for oid in batch { _ = try doomed.delete(oid, txn: nil) }
                collected.withLock { $0.append(contentsOf: freed) }
                noteCommitLogWritten(counters)
                report.collected += freed.count
                let before = counters.objects
                try collectGarbage(&counters)
                report.collected += Int(before - counters.objects)
            }
        }
        report.duration = clock.now - start
        report.finished = Date()
        try writeTransaction { txn in
            try meta.putString("last-cycle-collection",
                               "\(report.marked) \(report.collected) \(report.duration.seconds) \(report.finished.timeIntervalSince1970)",
                               txn: txn)
            _ = try Array("cycle-collection-progress".utf8).withUnsafeBytes { key in try meta.delete(key, txn: txn) }
        }
        configuration.onCollection?(.cycles(report))
        return report
    }

    /// The last cycle collection's figures, as recorded in the store (so
    /// another process, `durus stats`, can read them); `nil` before the first.
    public func lastCycleCollection() throws -> CycleCollectionReport? {
        try reading { () throws in
            guard let fields = try metaFields("last-cycle-collection"), fields.count >= 3,
                  let marked = Int(fields[0]), let collected = Int(fields[1]), let seconds = Double(fields[2])
            else { return nil }
            let finished = fields.count > 3 ? Double(fields[3]).map { Date(timeIntervalSince1970: $0) } : nil
            return CycleCollectionReport(marked: marked, collected: collected, duration: .seconds(seconds),
                                         finished: finished ?? Date(timeIntervalSince1970: 0))
        }
    }

    /// Marks `starts` and everything they reach (not yet marked); returns how
    /// many it marked, visiting them through a ``Frontier`` that spills into
    /// the table `spill`. `progress` hears the count every 10,000 marks.
    func markFrom(_ starts: [OID], marks: Table, frontier spill: Table, txn: Txn?,
                  progress: (Int) throws -> Void = { _ in }) throws -> Int {
        var count = 0
        var frontier = Frontier(spill: spill)
        func push(_ oid: OID) throws {
            guard try marks.insert(oid) else { return }
            count += 1
            if count % 10_000 == 0 { try progress(count) }
            try frontier.push(oid)
        }
        for oid in starts { try push(oid) }
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        var references: [UInt64] = []
        while let oid = try frontier.pop() {
            // A dangling reference marks an OID with no record: harmless, it is never swept.
            guard let length = try records.read(oid, into: &buffer, txn: txn) else { continue }
            distinctReferences(UnsafeRawBufferPointer(rebasing: buffer[..<length]), of: oid, into: &references)
            for ref in references { try push(OID(ref)) }
        }
        return count
    }
}
