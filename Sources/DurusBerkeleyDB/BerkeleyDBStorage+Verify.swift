import CBerkeleyDB
import Durus

extension BerkeleyDBStorage {
    /// Checks the store against itself in one consistent snapshot, while it
    /// keeps serving: recounts every reference in a streaming pass and
    /// compares with the stored counts, finds dangling references, marks
    /// from the root to find what is unreachable, and checks the counters.
    ///
    /// Memory stays flat in the number of objects: the recount and the marks
    /// live in temporary Berkeley DB tables (spilling to disk when the cache
    /// fills), not in Swift collections.
    ///
    /// ```swift
    /// let report = try storage.verify()
    /// if !report.isClean { print(report) }
    /// ```
    public func verify() throws -> VerifyReport {
        try reading {
            try withTemporaryTables(["verify-recount", "verify-marks", "verify-frontier"]) { tables in
                let (recount, marks, frontier) = (tables[0], tables[1], tables[2])
                return try snapshot { txn in
                    var report = VerifyReport()
                    let omits = try meta.uint64("format", txn: txn) >= 2
                    try recountReferences(into: recount, report: &report, txn: txn)
                    try compareCounts(with: recount, omitsCountOfOne: omits, report: &report, txn: txn)
                    try mark(marks, frontier: frontier, txn: txn)
                    try classifyUnreachable(recount: recount, marks: marks, omitsCountOfOne: omits, report: &report, txn: txn)
                    let objects = try meta.uint64("objects", txn: txn)
                    let bytes = try meta.uint64("bytes", txn: txn)
                    if objects != UInt64(report.objects) || bytes != UInt64(report.bytes) {
                        report.counterMismatch = "counters say \(objects) objects and \(bytes) bytes; "
                            + "the scan found \(report.objects) and \(report.bytes)"
                    }
                    return report
                }
            }
        }
    }

    /// Pass 1: every record parses, names its key, and references only
    /// stored objects; `recount` gets each object's number of referrers.
    private func recountReferences(into recount: Table, report: inout VerifyReport, txn: Txn) throws {
        try records.scan(txn: txn) { key, value in
            report.objects += 1
            report.bytes += value.count
            let oid = OID(bytes: key) ?? OID(.max)
            guard let record = try? Record(key: oid, bytes: Array(value)) else {
                report.note(oid, in: \.malformed, count: \.malformedCount)
                return true
            }
            for ref in record.referenceSet {
                try recount.putCount(ref, try recount.count(ref, txn: nil) &+ 1, txn: nil)
                if try !records.exists(ref, txn: txn) {
                    report.note(.init(from: oid, to: ref), in: \.dangling, count: \.danglingCount)
                }
            }
            return true
        }
    }

    /// Pass 2: the stored counts equal the recount, both ways round (an
    /// unreferenced object's count is checked in pass 4).
    private func compareCounts(with recount: Table, omitsCountOfOne omits: Bool, report: inout VerifyReport, txn: Txn) throws {
        try recount.scan(txn: nil) { key, value in
            guard let oid = OID(bytes: key), let actual = OID(bytes: value)?.rawValue else { return true }
            let stored = try records.exists(oid, txn: txn)
                ? storedCount(oid, omitsCountOfOne: omits, txn: txn) : refcounts.count(oid, txn: txn)
            if stored != actual {
                report.note(.init(oid: oid, stored: stored, actual: actual), in: \.countMismatches, count: \.countMismatchCount)
            }
            return true
        }
        try refcounts.scan(txn: txn) { key, value in
            guard let oid = OID(bytes: key) else {
                report.note(OID(.max), in: \.malformed, count: \.malformedCount)
                return true
            }
            guard let stored = OID(bytes: value)?.rawValue else {
                report.note(oid, in: \.malformed, count: \.malformedCount)
                return true
            }
            if stored != 0, try !recount.exists(oid, txn: nil) {
                report.note(.init(oid: oid, stored: stored, actual: 0), in: \.countMismatches, count: \.countMismatchCount)
            }
            return true
        }
    }

    /// Pass 3: marks everything reachable from the root, through a
    /// ``Frontier`` that spills into the table `frontier`.
    private func mark(_ marks: Table, frontier spill: Table, txn: Txn) throws {
        guard try records.exists(.root, txn: txn) else { return }
        try marks.put(.root, [], txn: nil)
        var frontier = Frontier(spill: spill)
        try frontier.push(.root)
        while let oid = try frontier.pop() {
            guard let bytes = try records.get(oid, txn: txn), let record = try? Record(bytes: bytes) else { continue }
            for ref in record.referenceSet where try !marks.exists(ref, txn: nil) {
                try marks.put(ref, [], txn: nil)
                if try records.exists(ref, txn: txn) { try frontier.push(ref) }
            }
        }
    }

    /// Pass 4: sorts every unmarked object into queued garbage, stranded
    /// (unreferenced yet not queued) or leaked (kept alive by a cycle).
    private func classifyUnreachable(recount: Table, marks: Table, omitsCountOfOne omits: Bool,
                                     report: inout VerifyReport, txn: Txn) throws {
        try records.scan(txn: txn) { key, _ in
            guard let oid = OID(bytes: key) else { return true }
            if try oid == .root || marks.exists(oid, txn: nil) { return true }
            // Referenced by nothing, yet counted as referenced once by having no row
            // (a row that says so is noted in pass 2).
            if Self.impliedCount(oid, omits) != 0, try !recount.exists(oid, txn: nil),
               try refcounts.countIfPresent(oid, txn: txn) == nil {
                report.note(.init(oid: oid, stored: Self.impliedCount(oid, omits), actual: 0),
                            in: \.countMismatches, count: \.countMismatchCount)
            }
            if try garbage.exists(oid, txn: txn) {
                report.pendingGarbage += 1
            } else if try recount.count(oid, txn: nil) == 0 {
                report.note(oid, in: \.unreachable, count: \.unreachableCount)
            } else {
                report.note(oid, in: \.leaked, count: \.leakedCount)
            }
            return true
        }
    }

    /// Private tables, one for each of `names`, open while `body` runs.
    func withTemporaryTables<T>(_ names: [String], _ body: ([Table]) throws -> T) throws -> T {
        var tables: [Table] = []
        defer { for table in tables { table.close() } }
        for name in names { tables.append(try temporaryTable(name)) }
        return try body(tables)
    }

    /// A private, unnamed table in the environment's cache, backed by a
    /// temporary file only if the cache overflows; gone when closed.
    func temporaryTable(_ name: String) throws -> Table {
        let handle = try Engine.openHandle(env, file: nil, name: name, type: durus_DB_BTREE,
                                           flags: durus_DB_CREATE | durus_DB_THREAD, mode: 0o600)
        return Table(handle: handle, name: name)
    }
}
