/// The pieces of Durus's storage protocol, version 1, that the client and the
/// server share: command and status bytes and the transaction data layout.
///
/// Every integer is big-endian. A commit's transaction data is a sequence of
/// `u32 (8 + record length) · OID · record`, where the record itself starts
/// with the same OID (as Durus 4.3's `ClientStorage` sends it).
package enum WireProtocol {
    /// The protocol version both sides send after `V`.
    package static let version: UInt32 = 1

    /// The command bytes a client sends.
    package enum Command: UInt8, Sendable {
        case version = 0x56      // V
        case newOID = 0x4E       // N
        case newOIDs = 0x4D      // M
        case load = 0x4C         // L
        case bulkLoad = 0x42     // B
        case commit = 0x43       // C
        case sync = 0x53         // S
        case pack = 0x50         // P
        case quit = 0x51         // Q
        case close = 0x2E        // .
    }

    /// An extension the sites of a replication group use among themselves
    /// (never a Durus 4.3 client): `E`, answered with the server's
    /// commit-log end, a u64 (0 when it keeps none). A replica forwarding a
    /// commit waits until its own copy holds that entry.
    public static let commitLogEndCommand: UInt8 = 0x45   // E

    /// The status bytes a server answers with.
    package enum Status: UInt8, Sendable {
        case okay = 0x4F         // O
        case keyError = 0x4B     // K
        case invalid = 0x49      // I
    }

    /// Encodes `records` as one commit's transaction data.
    package static func encodeTransaction(_ records: [Record]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(records.reduce(0) { $0 + 12 + $1.bytes.count })
        for record in records {
            BigEndian.append(UInt32(8 + record.bytes.count), to: &bytes)
            record.oid.append(to: &bytes)
            bytes.append(contentsOf: record.bytes)
        }
        return bytes
    }

    /// Decodes one commit's transaction data, checking every length.
    ///
    /// - Throws: ``DurusError/protocolViolation(_:)`` for data too short to
    ///   hold a length, a length under 8 or running past the end, a record
    ///   that is malformed or names another OID than its frame, or the same
    ///   OID twice.
    package static func decodeTransaction(_ bytes: [UInt8]) throws(DurusError) -> [Record] {
        var records: [Record] = []
        var seen: Set<OID> = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 4 else {
                throw .protocolViolation("transaction data ends \(bytes.count - offset) bytes into a record length at byte \(offset)")
            }
            let length = bytes.withUnsafeBytes { Int(BigEndian.uint32($0, at: offset)) }
            guard length >= 8 else {
                throw .protocolViolation("record length \(length) at byte \(offset) is under 8")
            }
            guard length <= bytes.count - offset - 4 else {
                throw .protocolViolation("record length \(length) at byte \(offset) runs past the end of \(bytes.count) bytes")
            }
            let oid = bytes.withUnsafeBytes { OID(BigEndian.uint64($0, at: offset + 4)) }
            let record: Record
            do {
                record = try Record(key: oid, bytes: Array(bytes[(offset + 12) ..< (offset + 4 + length)]))
            } catch {
                throw .protocolViolation("record at byte \(offset): \(error)")
            }
            guard seen.insert(oid).inserted else {
                throw .protocolViolation("\(oid) appears twice in one transaction")
            }
            records.append(record)
            offset += 4 + length
        }
        return records
    }
}
