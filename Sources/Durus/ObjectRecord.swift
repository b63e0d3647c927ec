/// The data part of a record written for a Swift object:
///
///     0xD5 · format version (2) · flags (bit 0: body compressed)
///     · type-name length (u16) · type name (UTF-8) · body
///
/// The type name stands uncompressed at the front so tools can report it
/// without decoding the state. 0xD5 never starts a Python pickle (0x80), so
/// a store may hold both kinds.
enum ObjectRecord {
    static let marker: UInt8 = 0xD5
    /// The version written. Version 2 added ``Tag/intDeltas``, version 3
    /// ``Tag/optional``; records of versions 1 and 2 (without them) read the same.
    static let version: UInt8 = 3
    static let compressedFlag: UInt8 = 1

    /// What compressing a state gave.
    enum Compression {
        /// Not tried: not asked, or a body too small to gain.
        case notTried
        /// Shrank the body by an eighth or more.
        case paid
        /// Shrank it by less (the record holds whichever is smaller).
        case poor
    }

    static func data(typeName: String, body: [UInt8], compress: Bool) -> (bytes: [UInt8], compression: Compression) {
        var name = Array(typeName.utf8)
        if name.count > Int(UInt16.max) { name = Array(name.prefix(Int(UInt16.max))) }
        var payload = body
        var flags: UInt8 = 0
        var outcome = Compression.notTried
        if compress, body.count > 64 {
            outcome = .poor
            if let packed = Zlib.compress(body), packed.count < body.count {
                if packed.count <= body.count - body.count / 8 { outcome = .paid }
                payload = packed
                flags |= compressedFlag
            }
        }
        var out: [UInt8] = [marker, version, flags, UInt8(name.count >> 8), UInt8(name.count & 0xFF)]
        out.reserveCapacity(out.count + name.count + payload.count)
        out.append(contentsOf: name)
        out.append(contentsOf: payload)
        return (out, outcome)
    }

    /// The type name (UTF-8) and the (inflated) body of a record's data.
    static func parse(_ bytes: ArraySlice<UInt8>, oid: OID) throws(DurusError) -> (name: ArraySlice<UInt8>, body: [UInt8]) {
        guard let first = bytes.first else { throw .badState(oid: oid, reason: "the record has no data") }
        guard first == marker else {
            if first == 0x80 { throw .unknownType(pickleClassName(Array(bytes)) ?? "a Python pickle") }
            throw .badState(oid: oid, reason: "the data starts with byte \(first), not a Swift state")
        }
        let start = bytes.startIndex
        guard bytes.count >= 5 else { throw .badState(oid: oid, reason: "the state header is truncated") }
        guard 1 ... version ~= bytes[start + 1] else {
            throw .badState(oid: oid, reason: "state format version \(bytes[start + 1]); this build reads versions 1 to \(version)")
        }
        let nameLength = Int(bytes[start + 3]) << 8 | Int(bytes[start + 4])
        guard bytes.count >= 5 + nameLength else { throw .badState(oid: oid, reason: "the type name is truncated") }
        let name = bytes[start + 5 ..< start + 5 + nameLength]
        let payload = bytes[(start + 5 + nameLength)...]
        guard bytes[start + 2] & compressedFlag != 0 else { return (name, Array(payload)) }
        guard let body = Zlib.decompress(payload) else {
            throw .badState(oid: oid, reason: "the compressed state does not inflate")
        }
        return (name, body)
    }

    /// The class a record names, for Swift records and Python pickles alike.
    static func typeName(of data: ArraySlice<UInt8>) -> String? {
        if data.first == marker { return swiftTypeName(of: data).map { String(decoding: $0, as: UTF8.self) } }
        return data.first == 0x80 ? pickleClassName(Array(data.prefix(512))) : nil
    }

    /// The type name (UTF-8) a Swift record's header holds; nil for any other data.
    static func swiftTypeName(of data: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        let start = data.startIndex
        guard data.first == marker, data.count >= 5 else { return nil }
        let length = Int(data[start + 3]) << 8 | Int(data[start + 4])
        guard data.count >= 5 + length else { return nil }
        return data[start + 5 ..< start + 5 + length]
    }

    /// Durus pickles start with the class as a protocol-2 global: 0x80 0x02 'c' module '\n' name '\n'.
    static func pickleClassName(_ bytes: [UInt8]) -> String? {
        guard bytes.count > 3, bytes[0] == 0x80, bytes[2] == UInt8(ascii: "c") else { return nil }
        let lines = bytes[3...].split(separator: UInt8(ascii: "\n"), maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count >= 2 else { return nil }
        return String(decoding: lines[0], as: UTF8.self) + "." + String(decoding: lines[1], as: UTF8.self)
    }
}
