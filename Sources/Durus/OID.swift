/// The identity of a stored object: an unsigned 64-bit number, written as 8
/// big-endian bytes wherever Durus writes it (records, files, the wire).
///
/// OID 0 is the root object. Storages hand OIDs out in increasing order and
/// never hand one out twice.
///
/// ```swift
/// let oid = OID(42)
/// oid.bytes            // [0, 0, 0, 0, 0, 0, 0, 42]
/// OID(bytes: oid.bytes) == oid
/// ```
public struct OID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The OID as a number.
    public var rawValue: UInt64

    /// The root object's OID, 0.
    public static let root = OID(0)

    /// The size of an encoded OID in bytes.
    public static let byteCount = 8

    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }

    /// Decodes 8 big-endian bytes; `nil` when `bytes` does not hold exactly 8.
    @inlinable public init?<C: Collection<UInt8>>(bytes: C) {
        guard bytes.count == OID.byteCount else { return nil }
        // Contiguous bytes (arrays, slices, buffers) are read as one word.
        if let value = bytes.withContiguousStorageIfAvailable({ buffer in
            UInt64(bigEndian: UnsafeRawBufferPointer(buffer).loadUnaligned(as: UInt64.self))
        }) {
            self.rawValue = value
            return
        }
        var value: UInt64 = 0
        for byte in bytes { value = value << 8 | UInt64(byte) }
        self.rawValue = value
    }

    /// The 8 big-endian bytes of this OID.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: rawValue.bigEndian) { Array($0) }
    }

    /// Appends the 8 big-endian bytes of this OID to `buffer`.
    @inlinable public func append(to buffer: inout [UInt8]) {
        withUnsafeBytes(of: rawValue.bigEndian) { buffer.append(contentsOf: $0) }
    }

    @inlinable public static func < (lhs: OID, rhs: OID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The hash a `Set` or `Dictionary` of OIDs places them by: the OID mixed
    /// with the table's per-process random seed by two multiply–xor-shift
    /// rounds (a few instructions, where `Hasher`'s SipHash takes hundreds),
    /// as every commit builds several such sets. The low bits a table uses
    /// depend on all of the OID's and the seed's.
    @inlinable public func _rawHashValue(seed: Int) -> Int {
        var x = rawValue ^ UInt64(truncatingIfNeeded: seed)
        x = (x ^ (x &>> 32)) &* 0xD6E8_FEB8_6659_FD93
        x = (x ^ (x &>> 32)) &* 0xD6E8_FEB8_6659_FD93
        return Int(truncatingIfNeeded: x ^ (x &>> 32))
    }

    public var description: String { "OID(\(rawValue))" }
}

extension OID: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: UInt64) { self.rawValue = value }
}

/// Reads big-endian integers from raw bytes without alignment requirements.
@usableFromInline package enum BigEndian {
    @inlinable package static func uint64(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    @inlinable package static func uint32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inlinable package static func append(_ value: UInt32, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }
    @inlinable package static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }
}
