import Durus

// Berkeley DB splits a full B-tree leaf in half, except the last leaf when
// the new key goes at its end: then the new leaf starts with that key alone
// and the old one stays full, so ascending puts fill every page, and any
// other order leaves them about half empty. A packed Durus file is nearly
// but not quite in OID order: Durus's pack writes objects as it walks the
// references, so a 1,000,000-object file holds some 200 ascending runs,
// interleaved up to some 8,000 records apart, with a BTree's nodes (made
// late, so with high OIDs) ahead of the items they hold. Put in file order,
// that migration's records took 333 MB for 156 MB of data (leaves 54% full),
// its reference counts 60 MB for 17. The two windows below sort the puts a
// bounded stretch at a time, with memory that does not grow with the store:
// then 195 MB and 31 MB (leaves 92% and 99% full).

/// Records on their way into the records table, put back in OID order over
/// a window of up to `capacity` records and `byteCapacity` bytes: each
/// record offered past those bounds lets out the smallest waiting.
/// Records of one OID leave in the order they came, so a later version still
/// overrides an earlier one.
struct RecordWindow {
    /// Ordered by OID, then by arrival.
    private struct Entry: Comparable {
        let oid: UInt64
        let sequence: Int
        let record: Record
        static func < (a: Entry, b: Entry) -> Bool { (a.oid, a.sequence) < (b.oid, b.sequence) }
        static func == (a: Entry, b: Entry) -> Bool { (a.oid, a.sequence) == (b.oid, b.sequence) }
    }

    let capacity: Int
    let byteCapacity: Int
    private var heap = MinHeap<Entry>()
    private var bytes = 0
    private var sequence = 0

    init(capacity: Int = 10_000, byteCapacity: Int = 8 << 20) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Adds `record`; passes to `out` the records the window no longer holds.
    mutating func offer(_ record: Record, _ out: (Record) throws -> Void) throws {
        heap.push(Entry(oid: record.oid.rawValue, sequence: sequence, record: record))
        sequence += 1
        bytes += record.bytes.count
        while heap.count > capacity || (bytes > byteCapacity && heap.count > 1) { try out(popSmallest()) }
    }

    /// Passes every record still held to `out`, smallest OID first.
    mutating func drain(_ out: (Record) throws -> Void) throws {
        while !heap.isEmpty { try out(popSmallest()) }
    }

    private mutating func popSmallest() -> Record {
        let smallest = heap.popSmallest()!.record
        bytes -= smallest.bytes.count
        return smallest
    }
}

/// First reference counts on their way into the reference-count table, put
/// back in OID order over a window of up to `capacity` OIDs. An OID above
/// every count already let out cannot be in the table, so its first count
/// waits here, and later counts of it add up here, until the window lets
/// the smallest out; an OID at or below that mark is counted in the table
/// itself. The table and the window never hold the same OID.
struct CountWindow {
    let capacity: Int
    private var counts: [UInt64: UInt64] = [:]
    private var heap = MinHeap<UInt64>()
    private var letOut: UInt64?

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// Whether counts wait in the window.
    var isEmpty: Bool { heap.isEmpty }

    /// Adds one to the count of `oid`; true when it is its first.
    /// `counted` adds one in the table (returning whether that was the
    /// first), `out` writes a count the window lets out.
    mutating func countUp(_ oid: UInt64, counted: (UInt64) throws -> Bool,
                          out: (UInt64, UInt64) throws -> Void) throws -> Bool {
        if let count = counts[oid] {
            counts[oid] = count + 1
            return false
        }
        if let letOut, oid <= letOut { return try counted(oid) }
        counts[oid] = 1
        heap.push(oid)
        while heap.count > capacity { try letOutSmallest(out) }
        return true
    }

    /// Lets out up to `limit` counts, smallest OID first.
    mutating func drain(limit: Int, _ out: (UInt64, UInt64) throws -> Void) throws {
        for _ in 0 ..< limit where !heap.isEmpty { try letOutSmallest(out) }
    }

    private mutating func letOutSmallest(_ out: (UInt64, UInt64) throws -> Void) throws {
        guard let smallest = heap.popSmallest(), let count = counts.removeValue(forKey: smallest) else { return }
        try out(smallest, count)
        letOut = max(letOut ?? 0, smallest)
    }
}
