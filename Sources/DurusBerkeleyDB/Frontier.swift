import Durus

/// The distinct references of the encoded record `bytes` (as
/// `Record.referenceSet`: without `oid` itself), sorted, into
/// `references`; none for a malformed record.
func distinctReferences(_ bytes: UnsafeRawBufferPointer, of oid: OID, into references: inout [UInt64]) {
    references.removeAll(keepingCapacity: true)
    guard bytes.count >= 12 else { return }
    let start = 12 + Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
    guard start <= bytes.count, (bytes.count - start) % 8 == 0 else { return }
    for offset in stride(from: start, to: bytes.count, by: 8) {
        references.append(UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
    }
    references.sort()
    var kept = 0
    for ref in references where ref != oid.rawValue && (kept == 0 || references[kept - 1] != ref) {
        references[kept] = ref
        kept += 1
    }
    references.removeLast(references.count - kept)
}

/// OIDs waiting for a visit in a walk from the root (migration, the cycle
/// collector, verify), smallest first: stores are mostly written in about
/// that order (a packed Durus file is), so the visits go through the store
/// nearly front to back. Up to `bound` wait in memory, the rest in a
/// temporary table (ordered by OID too), taken back a bound at a time, so a
/// store of any shape is walked in bounded memory.
struct Frontier {
    let spill: Table
    private var heap = MinHeap<UInt64>()
    private var spilled = 0
    private let bound = 100_000

    init(spill: Table) {
        self.spill = spill
    }

    mutating func push(_ oid: OID) throws {
        guard heap.count < bound else {
            try spill.put(oid, [], txn: nil)
            spilled += 1
            return
        }
        heap.push(oid.rawValue)
    }

    mutating func pop() throws -> OID? {
        if heap.isEmpty, spilled > 0 {
            let taken = try spill.firstOIDs(limit: bound, txn: nil)
            for oid in taken { _ = try spill.delete(oid, txn: nil) }
            spilled -= taken.count
            heap = MinHeap(ascending: taken.map(\.rawValue))
        }
        return heap.popSmallest().map { OID($0) }
    }
}
