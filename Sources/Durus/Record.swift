/// One stored object as every storage, file and the wire carry it:
/// OID (8 bytes) · data length (u32 big-endian) · data · the OIDs the object
/// references (8 bytes each).
///
/// The storage layer never decodes `data`; it needs only the references, for
/// reference counting and garbage collection. A record keeps its encoded bytes,
/// so loading, storing and serving one costs no re-encoding.
///
/// ```swift
/// let record = Record(oid: 7, data: Array("state".utf8), references: [9, 3, 9])
/// record.references      // [OID(3), OID(9)]: sorted, without duplicates
/// let same = try Record(bytes: record.bytes)
/// ```
public struct Record: Hashable, Sendable {
    /// The encoded record.
    public let bytes: [UInt8]

    /// Builds a record. References are sorted and deduplicated, and a
    /// reference of the object to itself is dropped, as the format asks.
    @inlinable
    public init(oid: OID, data: some Collection<UInt8>, references: some Sequence<OID>) {
        // Sorted, then duplicates and the object itself squeezed out in place.
        var refs = Array(references)
        refs.sort()
        var kept = 0
        for index in refs.indices {
            let ref = refs[index]
            if ref != oid && (kept == 0 || refs[kept - 1] != ref) {
                refs[kept] = ref
                kept += 1
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12 + data.count + 8 * kept)
        oid.append(to: &bytes)
        BigEndian.append(UInt32(truncatingIfNeeded: data.count), to: &bytes)
        bytes.append(contentsOf: data)
        for ref in refs[..<kept] { ref.append(to: &bytes) }
        self.bytes = bytes
    }

    /// Parses encoded record bytes, checking their layout.
    ///
    /// References are accepted in any order, as Python Durus writes them.
    /// - Throws: ``DurusError/malformedRecord(_:)`` when the bytes are shorter
    ///   than the header, the data length runs past the end, or the reference
    ///   list is not a whole number of OIDs.
    public init(bytes: [UInt8]) throws(DurusError) {
        guard bytes.count >= 12 else {
            throw .malformedRecord("\(bytes.count) bytes is shorter than the 12-byte record header")
        }
        let dataLength = bytes.withUnsafeBytes { Int(BigEndian.uint32($0, at: 8)) }
        guard dataLength <= bytes.count - 12 else {
            throw .malformedRecord("data length \(dataLength) runs past the end of a \(bytes.count)-byte record")
        }
        guard (bytes.count - 12 - dataLength) % 8 == 0 else {
            throw .malformedRecord("reference list of \(bytes.count - 12 - dataLength) bytes is not a multiple of 8")
        }
        self.bytes = bytes
    }

    /// Parses a record that was sent or filed under the OID `key`.
    /// - Throws: ``DurusError/oidMismatch(key:embedded:)`` when the record
    ///   names another OID, or ``DurusError/malformedRecord(_:)``.
    public init(key: OID, bytes: [UInt8]) throws(DurusError) {
        try self.init(bytes: bytes)
        guard oid == key else { throw .oidMismatch(key: key, embedded: oid) }
    }

    /// The object's OID.
    public var oid: OID {
        bytes.withUnsafeBytes { OID(BigEndian.uint64($0, at: 0)) }
    }

    private var dataLength: Int {
        bytes.withUnsafeBytes { Int(BigEndian.uint32($0, at: 8)) }
    }

    /// The object's state, opaque to storages.
    public var data: ArraySlice<UInt8> {
        bytes[12 ..< 12 + dataLength]
    }

    /// The encoded reference list: equal lists mean equal references, which
    /// lets a storage skip reference counting for an unchanged object.
    public var referenceBytes: ArraySlice<UInt8> {
        bytes[(12 + dataLength)...]
    }

    /// The referenced OIDs as stored (Durus-written records may be unsorted).
    public var references: [OID] {
        let start = 12 + dataLength
        let count = (bytes.count - start) / 8
        return bytes.withUnsafeBytes { raw in
            (0 ..< count).map { OID(BigEndian.uint64(raw, at: start + 8 * $0)) }
        }
    }

    /// The distinct OIDs this object references, without itself: what
    /// reference counting counts, whatever order or repeats the record holds.
    public var referenceSet: Set<OID> {
        var set = Set(references)
        set.remove(oid)
        return set
    }
}

extension Record: CustomStringConvertible {
    public var description: String {
        "Record(\(oid.rawValue), \(dataLength) bytes, refs: \(references.map(\.rawValue)))"
    }
}
