/// Writes ``PickleValue``s as protocol 2 pickles, opcode for opcode as
/// Python 3's pickler writes the same values for Durus: `bytes` as
/// `_codecs.encode(text, 'latin1')`, sets as `set([…])`, lists and dicts in
/// batches of 1,000, the smallest integer opcode, persistent references as
/// the persistent id `(oid, class)`.
///
/// Python's memo shares an object by identity, which a value cannot carry.
/// The writer shares what is equal and immutable (strings, `bytes`, globals,
/// tuples and frozensets of such), as Python does for one object used twice
/// (a class, a referenced object's OID, an interned name); lists, dicts, sets
/// and objects are never shared. A pickle that held two equal but distinct
/// strings therefore comes out shorter than Python's, and reads the same;
/// one that held a list twice (aliased) comes out with two equal lists.
///
/// Like a Python `Pickler`, a writer keeps its memo from one ``dump(_:)``
/// to the next, as Durus's class and state pickles share it.
///
/// ```swift
/// var writer = PickleWriter()
/// try writer.dump(.list([.int(1), .string("two")]))
/// writer.bytes     // 80 02 5d 71 00 28 4b 01 58 03 00 00 00 74 77 6f 71 01 65 2e
/// ```
public struct PickleWriter {
    /// The pickles written so far.
    public private(set) var bytes: [UInt8] = []
    /// The deepest nesting the writer follows before it throws; what a
    /// ``PickleReader`` with the same limit reads, the writer writes.
    public var maxDepth = 1000
    private var memoCount = 0
    private var shared: [PickleValue: Int] = [:]
    /// The memo indices of the persistent OIDs written, by OID.
    private var sharedOIDs: [UInt64: Int] = [:]
    /// The globals written and their memo indices.
    private var sharedGlobals: [(global: PickleValue.Global, index: Int)] = []

    public init() {}

    /// Appends one pickle of `value` (`PROTO 2` … `STOP`) to ``bytes``.
    /// - Throws: ``PickleError/Reason/limitExceeded(_:)`` for a value nested
    ///   deeper than ``maxDepth``, ``PickleError/Reason/malformed(_:)`` for a
    ///   global whose name holds a newline.
    public mutating func dump(_ value: PickleValue) throws(PickleError) {
        bytes += [PickleOpcode.proto, 2]
        try write(value, depth: 0)
        bytes.append(PickleOpcode.stop)
    }

    /// Forgets the memo, as Durus does before each record.
    public mutating func clearMemo() {
        memoCount = 0
        shared = [:]
        sharedOIDs = [:]
        sharedGlobals = []
    }

    /// One pickle of `value`.
    public static func pickle(_ value: PickleValue) throws(PickleError) -> [UInt8] {
        var writer = PickleWriter()
        try writer.dump(value)
        return writer.bytes
    }

    private typealias Op = PickleOpcode
    private static let codecsEncode = PickleValue.global(.init("_codecs", "encode"))
    private static let latin1 = PickleValue.string("latin1")

    private mutating func write(_ value: PickleValue, depth: Int) throws(PickleError) {
        guard depth <= maxDepth else {
            throw PickleError(offset: bytes.count, reason: .limitExceeded("values nested deeper than \(maxDepth)"))
        }
        let depth = depth + 1
        switch value {
        case .null: bytes.append(Op.none)
        case .bool(let flag): bytes.append(flag ? Op.newTrue : Op.newFalse)
        case .int(let int): writeInt(int)
        case .bigInt(let big): writeLong(big.littleEndianBytes)
        case .double(let double):
            bytes.append(Op.binFloat)
            withUnsafeBytes(of: double.bitPattern.bigEndian) { bytes += $0 }
        case .string(let text):
            if memoGet(value) { return }
            writeUnicode(text)
            memoPut(value)
        case .bytes(let data):
            if memoGet(value) { return }
            try writeBytes(data, depth: depth)
            memoPut(value)
        case .global(let global):
            // A record names a class or two, over and over: found by a scan.
            if let index = sharedGlobals.first(where: { $0.global == global })?.index { return emitGet(index) }
            guard !global.module.utf8.contains(0x0A), !global.name.utf8.contains(0x0A) else {
                throw PickleError(offset: bytes.count, reason: .malformed("the global \(global) has a newline in its name"))
            }
            bytes.append(Op.global)
            bytes += Array(global.module.utf8) + [0x0A] + Array(global.name.utf8) + [0x0A]
            sharedGlobals.append((global, memoCount))
            memoPut(nil)
        case .tuple(let items):
            let immutable = value.isImmutable
            if immutable, memoGet(value) { return }
            try writeTuple(items, depth: depth, memoKey: immutable ? value : nil)
        case .list(let items):
            bytes.append(Op.emptyList)
            memoPut(nil)
            try appendItems(items, depth: depth, exact: true)
        case .dict(let entries):
            bytes.append(Op.emptyDict)
            memoPut(nil)
            try setItems(entries, depth: depth, exact: true)
        case .set(let items), .frozenset(let items):
            let frozen = if case .frozenset = value { true } else { false }
            let immutable = frozen && value.isImmutable
            if immutable, memoGet(value) { return }
            try write(.global(.init("__builtin__", frozen ? "frozenset" : "set")), depth: depth)
            try writeTuple([.list(items)], depth: depth, memoKey: nil)
            bytes.append(Op.reduce)
            memoPut(immutable ? value : nil)
        case .persistent(let reference):
            // The OID's bytes are one object per referenced object in Python:
            // shared when the state refers to the same object again.
            if let index = sharedOIDs[reference.oid] {
                emitGet(index)
            } else {
                try writeBytes(withUnsafeBytes(of: reference.oid.bigEndian) { Array($0) }, depth: depth)
                sharedOIDs[reference.oid] = memoCount
                memoPut(nil)
            }
            if let classGlobal = reference.classGlobal {
                try write(.global(classGlobal), depth: depth)
                bytes.append(Op.tuple2)
                memoPut(nil)
            }
            bytes.append(Op.binPersID)
        case .object(let object):
            switch object.construction {
            case .instantiate:
                bytes.append(Op.mark)
                try write(object.callable, depth: depth)
                for argument in object.arguments { try write(argument, depth: depth) }
                bytes.append(Op.obj)
            case .newObject, .reduce:
                try write(object.callable, depth: depth)
                try writeTuple(object.arguments, depth: depth, memoKey: nil)
                bytes.append(object.construction == .reduce ? Op.reduce : Op.newObj)
            }
            memoPut(nil)
            try appendItems(object.listItems, depth: depth, exact: false)
            try setItems(object.dictItems, depth: depth, exact: false)
            if let state = object.state {
                try write(state, depth: depth)
                bytes.append(Op.build)
            }
        }
    }

    private mutating func writeInt(_ value: Int64) {
        switch value {
        case 0 ... 0xFF: bytes += [Op.binInt1, UInt8(value)]
        case 0x100 ... 0xFFFF: bytes += [Op.binInt2, UInt8(value & 0xFF), UInt8(value >> 8)]
        case Int64(Int32.min) ... Int64(Int32.max):
            bytes.append(Op.binInt)
            withUnsafeBytes(of: Int32(value).littleEndian) { bytes += $0 }
        default: writeLong(PickleValue.BigInt(value).littleEndianBytes)
        }
    }

    private mutating func writeLong(_ littleEndian: [UInt8]) {
        if littleEndian.count < 256 {
            bytes += [Op.long1, UInt8(littleEndian.count)]
        } else {
            bytes.append(Op.long4)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: littleEndian.count).littleEndian) { bytes += $0 }
        }
        bytes += littleEndian
    }

    private mutating func writeUnicode(_ text: String) {
        bytes.append(Op.binUnicode)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: text.utf8.count).littleEndian) { bytes += $0 }
        bytes += text.utf8
    }

    /// A tuple as Python writes a new one: `EMPTY_TUPLE` (never memoized),
    /// `TUPLE1`–`TUPLE3`, or `MARK` … `TUPLE`, then memoized.
    private mutating func writeTuple(_ items: [PickleValue], depth: Int, memoKey: PickleValue?) throws(PickleError) {
        if items.isEmpty {
            bytes.append(Op.emptyTuple)
            return
        }
        if items.count > 3 { bytes.append(Op.mark) }
        for item in items { try write(item, depth: depth) }
        bytes.append(items.count > 3 ? Op.tuple : Op.tuple1 + UInt8(items.count - 1))
        memoPut(memoKey)
    }

    /// `APPEND`s in batches of 1,000 as Python writes them: for a list
    /// (`exact`), one item alone is `APPEND` and every batch else `APPENDS`;
    /// for an object's list items, any batch of one is `APPEND`.
    private mutating func appendItems(_ items: [PickleValue], depth: Int, exact: Bool) throws(PickleError) {
        var start = 0
        while start < items.count {
            let batch = items[start ..< min(start + 1000, items.count)]
            start = batch.endIndex
            if batch.count == 1 && (!exact || items.count == 1) {
                try write(batch[batch.startIndex], depth: depth)
                bytes.append(Op.append)
            } else {
                bytes.append(Op.mark)
                for item in batch { try write(item, depth: depth) }
                bytes.append(Op.appends)
            }
        }
    }

    /// `SETITEM`s in batches of 1,000 as Python writes them: for a dict
    /// (`exact`), one entry alone is `SETITEM`, every batch else `SETITEMS`,
    /// and a full last batch is followed by an empty one; for an object's
    /// dict items, any batch of one is `SETITEM`.
    private mutating func setItems(_ entries: [PickleValue.Entry], depth: Int, exact: Bool) throws(PickleError) {
        guard !entries.isEmpty else { return }
        var start = 0, batchCount = 0
        repeat {
            let batch = entries[start ..< min(start + 1000, entries.count)]
            start = batch.endIndex
            batchCount = batch.count
            if batch.count > 1 || exact && entries.count > 1 { bytes.append(Op.mark) }
            for entry in batch {
                try write(entry.key, depth: depth)
                try write(entry.value, depth: depth)
            }
            bytes.append(batch.count > 1 || exact && entries.count > 1 ? Op.setItems : Op.setItem)
        } while exact ? batchCount == 1000 : start < entries.count
    }

    /// A `bytes` value as Python 3 pickles one at protocol 2, without its final memo entry.
    private mutating func writeBytes(_ data: [UInt8], depth: Int) throws(PickleError) {
        if data.isEmpty {
            try write(.global(.init("__builtin__", "bytes")), depth: depth)
            bytes.append(Op.emptyTuple)
        } else {
            try write(Self.codecsEncode, depth: depth)
            let text = String(String.UnicodeScalarView(data.map { Unicode.Scalar($0) }))
            if data.count == 1 {
                try write(.string(text), depth: depth)  // Python's one-character strings are shared singletons
            } else {
                writeUnicode(text)
                memoPut(nil)
            }
            try write(Self.latin1, depth: depth)
            bytes.append(Op.tuple2)
            memoPut(nil)
        }
        bytes.append(Op.reduce)
    }

    private mutating func memoGet(_ value: PickleValue) -> Bool {
        guard let index = shared[value] else { return false }
        emitGet(index)
        return true
    }

    private mutating func emitGet(_ index: Int) {
        if index < 256 {
            bytes += [Op.binGet, UInt8(index)]
        } else {
            bytes.append(Op.longBinGet)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: index).littleEndian) { bytes += $0 }
        }
    }

    /// Memoizes the value just written (every `PUT` takes the next index, as
    /// in Python); `key` is the value to share, `nil` for one never shared.
    private mutating func memoPut(_ key: PickleValue?) {
        if memoCount < 256 {
            bytes += [Op.binPut, UInt8(memoCount)]
        } else {
            bytes.append(Op.longBinPut)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: memoCount).littleEndian) { bytes += $0 }
        }
        if let key { shared[key] = memoCount }
        memoCount += 1
    }
}
