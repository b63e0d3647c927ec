@testable import Durus
import Testing

/// Swift writes; Python Durus 4.3 reads. Swift composes records for a
/// user-class object holding every kind of value, the persistent
/// collections, a BTree and references among them (a cycle and a
/// self-reference included); Python stores them in a FileStorage, loads each
/// object through a Connection and saves it again with Durus's ObjectWriter.
struct SwiftToPythonPickleTests {
    typealias Kit = PickleTestKit

    static let thing = PickleValue.Global("pickle_fixtures", "Thing")
    static let persistentDict = PickleValue.Global("durus.persistent_dict", "PersistentDict")
    static let persistentList = PickleValue.Global("durus.persistent_list", "PersistentList")
    static let persistentSet = PickleValue.Global("durus.persistent_set", "PersistentSet")

    static func ref(_ oid: UInt64, _ global: PickleValue.Global) -> PickleValue {
        .persistent(.init(oid: oid, classGlobal: global))
    }

    static func dict(_ pairs: KeyValuePairs<String, PickleValue>) -> PickleValue {
        .dict(pairs.map { .init(.string($0.key), $0.value) })
    }

    /// The objects, by OID.
    static let objects: [(OID, PickleRecord)] = [
        (0, PickleRecord(classGlobal: persistentDict, state: dict(["data": dict([
            "thing": ref(1, thing), "dict": ref(2, persistentDict), "list": ref(3, persistentList),
            "set": ref(4, persistentSet), "cycle": ref(5, thing), "tree": ref(6, .init("durus.btree", "BTree")),
        ])]))),
        (1, PickleRecord(classGlobal: thing, state: dict([
            "name": .string("Swift thing"), "accented": .string("ünïcödé ☃ e\u{301}"), "astral": .string("🦉"),
            "empty": .string(""), "count": .int(42), "negative": .int(-100_000), "max": .int(.max), "min": .int(.min),
            "big": .bigInt(.init(littleEndian: [UInt8](repeating: 0, count: 10) + [1])),
            "negative_big": .bigInt(.init(littleEndian: [UInt8](repeating: 0xFF, count: 300) + [0x80])),
            "ratio": .double(0.1), "negative_zero": .double(-0.0), "yes": .bool(true), "no": .bool(false), "nothing": .null,
            "blob": .bytes([0, 1, 0x7F, 0x80, 0xFF]), "no_bytes": .bytes([]), "one_byte": .bytes([0xE9]),
            "pair": .tuple([.int(1), .string("x")]), "quad": .tuple([.int(1), .int(2), .int(3), .int(4)]), "no_tuple": .tuple([]),
            "items": .list([.int(1), .string("two"), .list([.double(3.5), .list([])])]),
            "table": .dict([.init(.int(1), .string("one")), .init(.tuple([.int(2), .int(3)]), .list([])), .init(.null, .bool(true))]),
            "tags": .set([.int(1), .int(2), .int(3)]), "frozen": .frozenset([.int(8), .int(9)]), "no_set": .set([]),
            "shared_1": .tuple([.string("shared"), .int(1)]), "shared_2": .tuple([.string("shared"), .int(1)]),
            "friend": ref(5, thing), "myself": ref(1, thing), "dict_ref": ref(2, persistentDict),
            "refs": .list([ref(5, thing), ref(5, thing)]),
            "when": .object(.init(callable: .global(.init("datetime", "datetime")),
                                  arguments: [.bytes([0x07, 0xE8, 0x02, 0x1D, 0x0D, 0x0E, 0x0F, 0x02, 0x77, 0xB6])])),
            "plain": .object(.init(callable: .global(.init("pickle_fixtures", "Plain")), construction: .newObject,
                                   state: dict(["px": .int(1), "py": .list([.int(2)])]))),
            "ordered": .object(.init(callable: .global(.init("collections", "OrderedDict")),
                                     dictItems: [.init(.string("z"), .int(1)), .init(.string("a"), .int(2))])),
            "klass": .global(.init("pickle_fixtures", "Plain")),
            "many": .list((0 ..< 1500).map { .int(Int64($0) * 1000) }),
            // Python's one-character strings are singletons: the 'x' that
            // b'x' pickles as is the 'x' before it, the 'y' after b'y' is its.
            "chars": .list([.string("x"), .bytes([0x78]), .bytes([0x79]), .string("y")]),
        ]))),
        (2, PickleRecord(classGlobal: persistentDict, state: dict(["data": dict([
            "a": .int(1), "nested": dict(["list": .list([.int(1), .list([.int(2), .list([.int(3)])])])]), "ref": ref(1, thing),
        ])]))),
        (3, PickleRecord(classGlobal: persistentList, state: dict(["data": .list([
            .int(1), .string("two"), ref(2, persistentDict), .dict([]),
        ])]))),
        (4, PickleRecord(classGlobal: persistentSet, state: dict(["s": .set([.int(1), .int(2), .int(3)])]))),
        (5, PickleRecord(classGlobal: thing, state: dict(["name": .string("cycle"), "other": ref(1, thing)]))),
        (6, PickleRecord(classGlobal: .init("durus.btree", "BTree"), state: dict(["root": ref(7, .init("durus.btree", "BNode16"))]))),
        (7, PickleRecord(classGlobal: .init("durus.btree", "BNode16"), state: dict([
            "items": .list([.tuple([.int(1), .string("one")]), .tuple([.int(2), ref(5, thing)])]), "nodes": .null,
        ]))),
    ]

    /// Tried: the records above, stored and loaded by Durus. Each object
    /// has the class and the state Swift wrote (every value, nested, each
    /// reference as the object of that OID and class), Durus files the same
    /// references, and Durus, saving each object again, writes exactly
    /// Swift's bytes. (The sets hold small integers in the order Python
    /// iterates them: Python writes a set it loaded in its own hash order,
    /// whatever order the pickle listed.)
    @Test func swiftRecordsLoadInDurus() throws {
        let records = try Self.objects.map { oid, object throws(PickleError) in try object.record(oid: oid) }
        #expect(records[1].references == [1, 2, 5].map { OID($0) }.filter { $0 != records[1].oid })
        let loaded = try Kit.loadInDurus(records)
        #expect(loaded.count == records.count)
        for ((oid, object), record) in zip(Self.objects, records) {
            let durus = try #require(loaded[oid])
            #expect(durus.klass == [object.classGlobal.module, object.classGlobal.name])
            #expect(durus.state.same(Kit.view(object.state)), "\(oid): Durus loaded \(durus.state.description.prefix(2000))")
            #expect(durus.refs == record.references.map(\.rawValue), "\(oid)")
            #expect(Kit.bytes(hex: durus.resaved) == Array(record.data), "\(oid): \(Kit.firstDifference(Kit.bytes(hex: durus.resaved), Array(record.data)))")
        }
    }

    /// Tried: the same records uncompressed (Durus reads a state that does
    /// not start with zlib's 0x78 as a plain pickle) load in Durus alike.
    @Test func uncompressedRecordsLoadInDurus() throws {
        let records = try Self.objects.map { oid, object throws(PickleError) in try object.record(oid: oid, compressed: false) }
        let loaded = try Kit.loadInDurus(records)
        for (oid, object) in Self.objects {
            #expect(loaded[oid]?.state.same(Kit.view(object.state)) == true, "\(oid)")
        }
    }

    /// Tried: a few values whose exact protocol 2 bytes are known (what
    /// Python's pickle.dumps(value, 2) gives), so a writer regression shows
    /// here even without Python.
    @Test func writerBytesForKnownValues() throws {
        let expected: [(PickleValue, String)] = [
            (.list([.int(1), .string("two")]), "80025d7100284b01580300000074776f7101652e"),
            (.int(-1), "80024affffffff2e"),
            (.int(1 << 40), "80028a060000000000012e"),
            (.bytes([]), "8002635f5f6275696c74696e5f5f0a62797465730a7100295271012e"),
            (.dict([.init(.string("k"), .null)]), "80027d710058010000006b71014e732e"),
            (.tuple([.bool(true), .bool(false)]), "800288898671002e"),
            (.double(1.5), "8002473ff80000000000002e"),
        ]
        for (value, hex) in expected {
            #expect(Kit.hex(try PickleWriter.pickle(value)) == hex, "\(value)")
            #expect(try PickleReader.value(of: Kit.bytes(hex: hex)) == value)
        }
    }
}
