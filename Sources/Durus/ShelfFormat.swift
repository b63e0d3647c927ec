/// The byte layouts of Durus files, as Durus 4.3 writes them (durus/shelf.py,
/// durus/file_storage2.py). Every number is unsigned big-endian.
///
/// SHELF-1: `SHELF-1\n` · a transaction · an offset map · more transactions.
/// A transaction is a u64 byte count, then items, each a u64 length · the
/// OID · the record (which starts with the OID again). The offset map is a
/// u64 byte count · u64 bytes per word · u64 word count · the words; word `n`
/// is the offset of OID `n`'s item when it is below the map's own offset,
/// and otherwise a link in the list of free slots ("holes") Durus hands out.
///
/// DFS20: `DFS20\0` · the u64 offset of an index block (u64 length · a zlib
/// pickle of OID → offset) · transactions before and after that block, each
/// records (u32 length · record) closed by a u32 zero.
enum ShelfFormat {
    static let prefix: [UInt8] = Array("SHELF-1\n".utf8)
    static let dfs20Magic: [UInt8] = Array("DFS20".utf8) + [0]

    /// The size of an item header the scan checks: length, OID, the record's
    /// own OID and data length.
    static let itemHeader = 8 + 8 + 8 + 4

    /// The OID and length of the item whose first `itemHeader` bytes are
    /// `header`; nil when they are no item header. A record's OID is written
    /// twice, which tells garbage from an item.
    static func itemHeader(_ header: [UInt8]) -> (oid: OID, length: UInt64)? {
        let length = u64(header, at: 0)
        let oid = u64(header, at: 8)
        let dataLength = UInt64(u32(header, at: 24))
        guard length >= 20, u64(header, at: 16) == oid, 20 + dataLength <= length, (length - 20 - dataLength) % 8 == 0 else {
            return nil
        }
        return (OID(oid), length)
    }

    /// A new, empty SHELF-1 file, as Durus creates one: an empty transaction
    /// and an empty offset map.
    static let emptyFile: [UInt8] = prefix + u64(0) + offsetMap(start: prefix.count + 8, slots: [])

    /// The item Durus files `record` as inside a transaction.
    static func item(_ record: Record) -> [UInt8] {
        u64(8 + record.bytes.count) + record.oid.bytes + record.bytes
    }

    /// One transaction holding `records`.
    static func transaction(_ records: [Record]) -> [UInt8] {
        let items = records.flatMap(item)
        return u64(items.count) + items
    }

    /// An offset map standing at `start` whose slot `n` holds the item offset
    /// of OID `n`, or -1 for a hole. The last slot must be a hole: Durus
    /// starts walking the list of holes there.
    static func offsetMap(start: Int, slots: [Int]) -> [UInt8] {
        precondition(slots.last.map { $0 < 0 } ?? true, "the last slot of an offset map must be a hole")
        // Durus sizes words to hold `start + count + 1`, above the largest hole link.
        var bytesPerWord = 1
        while bytesPerWord < 8, (start + slots.count + 1) >> (8 * bytesPerWord) != 0 { bytesPerWord += 1 }
        var words = slots
        // Each hole links to the previous one; the first links to the last slot.
        var previousHole = slots.count - 1
        for (slot, offset) in slots.enumerated() where offset < 0 {
            words[slot] = start + previousHole
            previousHole = slot
        }
        var bytes = u64(16 + bytesPerWord * words.count) + u64(bytesPerWord) + u64(words.count)
        bytes.reserveCapacity(bytes.count + bytesPerWord * words.count)
        for word in words {
            for shift in stride(from: 8 * (bytesPerWord - 1), through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: word >> shift))
            }
        }
        return bytes
    }

    static func u64(_ value: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        BigEndian.append(UInt64(value), to: &bytes)
        return bytes
    }

    static func u64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        bytes.withUnsafeBytes { BigEndian.uint64($0, at: offset) }
    }

    static func u32(_ bytes: [UInt8], at offset: Int) -> Int {
        bytes.withUnsafeBytes { Int(BigEndian.uint32($0, at: offset)) }
    }

    /// A word of `count` bytes at `offset`.
    static func word(_ bytes: [UInt8], at offset: Int, count: Int) -> UInt64 {
        bytes[offset ..< offset + count].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// `start + length`, or `Int.max` when a corrupt length would overflow.
    static func end(_ start: Int, plus length: UInt64) -> Int {
        length > UInt64(Int.max - start) ? Int.max : start + Int(length)
    }
}
