import CZlib

/// The data of a record as Python Durus 4.3 writes it: the object's class as
/// a pickle of its own, then the pickled state (the object's `__getstate__()`),
/// zlib-compressed unless Durus was told not to compress. Both pickles are
/// protocol 2 from one pickler, so the state's memo goes on from the class's,
/// and each reference to another persistent object is the persistent id
/// `(oid, class)`.
///
/// ``init(data:oid:reader:)`` splits record data into class and state;
/// ``data(compressed:minimumCompressedSize:)`` and ``record(oid:compressed:)`` compose them back as
/// Durus does (for the values Durus writes, byte for byte). Swift records
/// start otherwise (0xD5), so ``isDurusPickle(_:)`` tells the two apart.
///
/// ```swift
/// let object = try PickleRecord(data: record.data, oid: record.oid)
/// object.classGlobal          // durus.persistent_dict.PersistentDict
/// object.state["data"]        // .dict([...])
/// object.references           // [OID(3), OID(7)]
/// let stored = try object.record(oid: record.oid)
/// ```
public struct PickleRecord: Hashable, Sendable {
    /// The object's class.
    public var classGlobal: PickleValue.Global
    /// The object's state: a dict of attributes for `Persistent` and the
    /// Durus collections, whatever `__getstate__` gave for other classes.
    public var state: PickleValue

    public init(classGlobal: PickleValue.Global, state: PickleValue) {
        self.classGlobal = classGlobal
        self.state = state
    }

    /// Splits Python Durus record data into class and state, inflating a
    /// compressed state as Durus does (a state that starts with zlib's 0x78).
    /// - Parameters:
    ///   - data: the record's data (a Durus record's bytes after its OID and length).
    ///   - oid: the record's OID, for errors.
    ///   - reader: the reader to use (limits, Python 2 strings, the
    ///     persistent-id hook); its memo is cleared first.
    /// - Throws: ``PickleError`` carrying `oid`: the data is no Durus
    ///   pickle, the class pickle holds no class, the state does not
    ///   inflate, or a pickle is damaged (its offset then counts in the
    ///   inflated state when ``PickleError/inInflatedState`` says so).
    public init(data: some Collection<UInt8>, oid: OID? = nil, reader: PickleReader = PickleReader()) throws(PickleError) {
        let bytes = Array(data)
        var reader = reader
        reader.clearMemo()
        var inflated = false
        do throws(PickleError) {
            guard Self.isDurusPickle(bytes) else {
                throw PickleError(offset: 0, reason: .notADurusRecord("the data does not start with a protocol 2 class pickle"))
            }
            let (pickledClass, end) = try reader.load(bytes)
            guard case .global(let classGlobal) = pickledClass else {
                throw PickleError(offset: 0, reason: .notADurusRecord("the class pickle holds no class"))
            }
            self.classGlobal = classGlobal
            if end < bytes.count, bytes[end] == 0x78 {
                guard let state = Zlib.decompress(bytes[end...], limit: reader.limits.maxInflatedBytes) else {
                    throw PickleError(offset: end, reason: .badCompressedState)
                }
                inflated = true
                self.state = try reader.load(state).value
            } else {
                self.state = try reader.load(bytes, at: end).value
            }
        } catch {
            var error = error
            error.oid = oid
            error.inInflatedState = inflated
            throw error
        }
    }

    /// The OIDs the state references, sorted, each once: the object's own
    /// OID too when the state refers to the object itself (Durus's reference
    /// list leaves it out, as ``record(oid:compressed:)`` does).
    public var references: [OID] {
        var found = Set<UInt64>()
        var pending = [state]
        while let value = pending.popLast() {
            switch value {
            case .persistent(let reference): found.insert(reference.oid)
            case .tuple(let items), .list(let items), .set(let items), .frozenset(let items): pending += items
            case .dict(let entries): pending += entries.flatMap { [$0.key, $0.value] }
            case .object(let object):
                pending += [object.callable] + object.arguments + object.listItems + (object.state.map { [$0] } ?? [])
                pending += object.dictItems.flatMap { [$0.key, $0.value] }
            default: break
            }
        }
        return found.sorted().map { OID($0) }
    }

    /// The record data as Durus writes it: the class pickle, then the state
    /// pickle, compressed at zlib's default level as Durus compresses it
    /// (`WRITE_COMPRESSED_STATE_PICKLES`) unless `compressed` is false.
    /// - Parameters:
    ///   - compressed: whether to compress the state pickle.
    ///   - minimumCompressedSize: a state pickle smaller than this stays
    ///     uncompressed (Durus reads both).
    /// - Throws: what ``PickleWriter/dump(_:)`` throws.
    public func data(compressed: Bool = true, minimumCompressedSize: Int = 0) throws(PickleError) -> [UInt8] {
        var writer = PickleWriter()
        try writer.dump(.global(classGlobal))
        let classEnd = writer.bytes.count
        try writer.dump(state)
        guard compressed, writer.bytes.count - classEnd >= minimumCompressedSize,
              let state = Zlib.compressLikePython(writer.bytes[classEnd...]) else { return writer.bytes }
        return Array(writer.bytes[..<classEnd]) + state
    }

    /// A whole record: OID, ``data(compressed:minimumCompressedSize:)`` and ``references`` (a
    /// reference of the object to itself left out, as Durus leaves it).
    public func record(oid: OID, compressed: Bool = true) throws(PickleError) -> Record {
        Record(oid: oid, data: try data(compressed: compressed), references: references)
    }

    /// Whether record data is a Python Durus pickle: it starts with the
    /// class pickle's `PROTO 2` and `GLOBAL` (0x80 0x02 'c'), where a Swift
    /// record starts with 0xD5.
    public static func isDurusPickle(_ data: some Collection<UInt8>) -> Bool {
        data.starts(with: [PickleOpcode.proto, 2, PickleOpcode.global])
    }
}

extension Zlib {
    /// `bytes` compressed as Python's `zlib.compress` does by default (level 6,
    /// a 32 KiB window): with the same zlib, the same bytes Durus writes.
    static func compressLikePython(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var length = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = output.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { compress2(out.baseAddress, &length, $0.baseAddress, uLong($0.count), Z_DEFAULT_COMPRESSION) }
        }
        guard status == Z_OK else { return nil }
        output.removeLast(output.count - Int(length))
        return output
    }
}
