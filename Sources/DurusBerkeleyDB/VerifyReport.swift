import Durus

/// What ``BerkeleyDBStorage/verify()`` found.
///
/// Each list keeps at most ``limit`` entries; the matching `…Count` property
/// holds the full number, so a store of any size can be verified in flat
/// memory.
public struct VerifyReport: Sendable, Equatable, CustomStringConvertible {
    /// A reference from a stored record to an OID with no record.
    public struct DanglingReference: Sendable, Equatable {
        public var from: OID
        public var to: OID
    }

    /// A stored reference count that differs from the recount.
    public struct CountMismatch: Sendable, Equatable {
        public var oid: OID
        public var stored: UInt64
        public var actual: UInt64
    }

    /// Most entries kept in each list.
    public static let limit = 1_000

    /// Records scanned.
    public var objects = 0
    /// Total bytes of the records scanned.
    public var bytes = 0
    /// Records whose bytes do not parse, or whose embedded OID differs from their key.
    public var malformed: [OID] = []
    public var malformedCount = 0
    public var dangling: [DanglingReference] = []
    public var danglingCount = 0
    public var countMismatches: [CountMismatch] = []
    public var countMismatchCount = 0
    /// Objects nothing references that are not the root and not queued as
    /// garbage: they would never be collected.
    public var unreachable: [OID] = []
    public var unreachableCount = 0
    /// Objects unreachable from the root that reference counting cannot
    /// collect: members of garbage cycles and what only they reference.
    public var leaked: [OID] = []
    public var leakedCount = 0
    /// Objects queued for collection (normal while a collection runs).
    public var pendingGarbage = 0
    /// Set when the stored object or byte counters disagree with the scan.
    public var counterMismatch: String?

    /// True when the tables agree with each other: every record parses,
    /// every reference resolves, every count is right, nothing is stranded.
    /// Leaked cycles do not break consistency.
    public var isConsistent: Bool {
        malformedCount == 0 && danglingCount == 0 && countMismatchCount == 0 && unreachableCount == 0
            && counterMismatch == nil
    }

    /// Consistent, and every stored object is reachable or queued for collection.
    public var isClean: Bool { isConsistent && leakedCount == 0 }

    public var description: String {
        var lines = ["\(objects) objects, \(bytes) bytes, \(pendingGarbage) queued as garbage"]
        if malformedCount > 0 { lines.append("\(malformedCount) malformed records: \(malformed.prefix(10).map(\.rawValue))") }
        if danglingCount > 0 {
            lines.append("\(danglingCount) dangling references: \(dangling.prefix(10).map { "\($0.from.rawValue)→\($0.to.rawValue)" })")
        }
        if countMismatchCount > 0 {
            lines.append("\(countMismatchCount) wrong reference counts: "
                + "\(countMismatches.prefix(10).map { "\($0.oid.rawValue): \($0.stored) stored, \($0.actual) actual" })")
        }
        if unreachableCount > 0 { lines.append("\(unreachableCount) unreferenced objects not queued: \(unreachable.prefix(10).map(\.rawValue))") }
        if leakedCount > 0 { lines.append("\(leakedCount) objects leaked in cycles: \(leaked.prefix(10).map(\.rawValue))") }
        if let counterMismatch { lines.append(counterMismatch) }
        return lines.joined(separator: "\n")
    }

    mutating func note<T>(_ value: T, in list: WritableKeyPath<VerifyReport, [T]>, count: WritableKeyPath<VerifyReport, Int>) {
        self[keyPath: count] += 1
        if self[keyPath: list].count < Self.limit { self[keyPath: list].append(value) }
    }
}
