@testable import Durus
import Testing

/// What Python 2's Durus wrote, written out by hand: cPickle at protocol 2
/// (memo from 1, `str` as `SHORT_BINSTRING`/`BINSTRING`, the OID a `str`),
/// and the text opcodes of protocols 0 and 1 (`STRING`, `INT`, `LONG`,
/// `UNICODE`, `FLOAT`, `PUT`/`GET`, `INST`) that older pickles hold.
struct PicklePython2Tests {
    typealias Kit = PickleTestKit

    static func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    static let thing = PickleValue.Global("pickle_fixtures", "Thing")

    /// A PersistentDict record as Python 2's Durus wrote it.
    static let classPickle = [0x80, 2] + text("cdurus.persistent_dict\nPersistentDict\nq\u{01}.")
    static let statePickle: [UInt8] =
        [0x80, 2, 0x7D, 0x71, 2] + text("U\u{04}dataq\u{03}") + [0x7D, 0x71, 4, 0x28]
        + text("U\u{04}nameq\u{05}U\u{03}Adaq\u{06}U\u{03}ageq\u{07}K$U\u{04}noteq\u{08}")
        + [0x58, 5, 0, 0, 0] + text("café") + text("q\u{09}U\u{05}childq\u{0A}U\u{08}") + [0, 0, 0, 0, 0, 0, 0, 7]
        + text("q\u{0B}cpickle_fixtures\nThing\nq\u{0C}") + [0x86] + text("q\u{0D}QU\u{07}strangeq\u{0E}U\u{08}")
        + [0, 0, 0, 0, 0, 0, 0, 0xC8] + text("h\u{0C}") + [0x86] + text("q\u{0F}QU\u{03}bigq\u{10}")
        + [0x8A, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1] + text("U\u{04}blobq\u{11}T") + [0, 1, 0, 0] + Array(0 ... 255)
        + text("q\u{12}U\u{04}sameq\u{13}h\u{06}U\u{04}flagq\u{14}") + [0x88, 0x75, 0x73, 0x2E]

    static let expectedState = PickleValue.dict([.init(.string("data"), .dict([
        .init(.string("name"), .string("Ada")),
        .init(.string("age"), .int(36)),
        .init(.string("note"), .string("café")),
        .init(.string("child"), .persistent(.init(oid: 7, classGlobal: thing))),
        .init(.string("strange"), .persistent(.init(oid: 200, classGlobal: thing))),
        .init(.string("big"), .bigInt(.init(littleEndian: [0, 0, 0, 0, 0, 0, 0, 0, 1]))),
        .init(.string("blob"), .bytes(Array(0 ... 255))),
        .init(.string("same"), .string("Ada")),
        .init(.string("flag"), .bool(true)),
    ]))])

    /// Tried: the record, compressed (as Durus wrote it) and not: ASCII
    /// `str` reads as a string (as Python 3's Durus reads it), other bytes
    /// as bytes, the OID `str` as an OID (ASCII or not), Python 2's memo from
    /// 1 (`BINGET 6` is 'Ada', `BINGET 12` the class).
    @Test func python2DurusRecord() throws {
        #expect(Self.classPickle.count == 43)
        let compressed = Self.classPickle + Zlib.compressLikePython(Self.statePickle[...])!
        for data in [compressed, Self.classPickle + Self.statePickle] {
            #expect(PickleRecord.isDurusPickle(data))
            let record = try PickleRecord(data: data, oid: 9)
            #expect(record.classGlobal == .init("durus.persistent_dict", "PersistentDict"))
            #expect(record.state == Self.expectedState, "\(record.state)")
            #expect(record.references == [7, 200])
        }
        // Python's encoding='bytes': every str is bytes, OIDs still OIDs.
        let asBytes = try PickleRecord(data: compressed, reader: PickleReader(legacyStrings: .bytes))
        #expect(asBytes.state[.bytes(Self.text("data"))]?[.bytes(Self.text("name"))] == .bytes(Self.text("Ada")))
        #expect(asBytes.references == [7, 200])
    }

    /// Tried: the Python 2 record written again by Swift and loaded by
    /// Python 3's Durus, which cannot load the original (its `blob` is no
    /// ASCII): strings are `str`, the blob `bytes`, the references objects.
    @Test func python2RecordRewrittenLoadsInPython3Durus() throws {
        let record = try PickleRecord(data: Self.classPickle + Self.statePickle, oid: 0)
        let loaded = try Kit.loadInDurus([try record.record(oid: 0)])
        let durus = try #require(loaded[0])
        #expect(durus.state.same(Kit.view(Self.expectedState)), "\(durus.state)")
    }

    /// A protocol 0 pickle as Python 2's `pickle.dumps(value)` wrote it.
    static let protocol0: [UInt8] = text("""
        (dp0
        S'name'
        p1
        S'Ada\\n\\'q\\' \\x41\\101\\\\'
        p2
        sS'n'
        p3
        I42
        sS'neg'
        p4
        I-7
        sS'flag'
        p5
        I01
        sS'off'
        p6
        I00
        sS'big'
        p7
        L123456789012345678901234567890L
        sS'small_long'
        p8
        L-5L
        sS'u'
        p9
        Vcaf
        """) + [0xE9] + Self.text("""
         \\u20ac \\u005c end\\U0001f989
        p10
        sS'f'
        p11
        F1.5
        sS'list'
        p12
        (lp13
        I1
        aI-2
        ag1
        a(I1
        S"x"
        tp14
        asS'tuple'
        p15
        g14
        sS'nested'
        p16
        (dp17
        S'k'
        p18
        (lp19
        ss.
        """)

    /// Tried: the protocol 0 pickle, against values written out by hand and
    /// against what Python 3's unpickler makes of the same bytes.
    @Test func protocol0TextOpcodes() throws {
        let value = try PickleReader.value(of: Self.protocol0)
        let expected = PickleValue.dict([
            .init(.string("name"), .string("Ada\n'q' AA\\")),
            .init(.string("n"), .int(42)),
            .init(.string("neg"), .int(-7)),
            .init(.string("flag"), .bool(true)),
            .init(.string("off"), .bool(false)),
            .init(.string("big"), .integer(littleEndian: Kit.bytes(hex: "d20a3f4eeee073c3f60fe98e01"))),
            .init(.string("small_long"), .int(-5)),
            .init(.string("u"), .string("café € \\ end🦉")),
            .init(.string("f"), .double(1.5)),
            .init(.string("list"), .list([.int(1), .int(-2), .string("name"), .tuple([.int(1), .string("x")])])),
            .init(.string("tuple"), .tuple([.int(1), .string("x")])),
            .init(.string("nested"), .dict([.init(.string("k"), .list([]))])),
        ])
        #expect(value == expected, "\(value)")
        let python: [Kit.Unpickled] = try Kit.run(["pickles"], input: [Kit.hex(Self.protocol0), Kit.hex(Self.protocol1)])
        #expect(python.count == 2)
        #expect(python.first?.view?.same(Kit.view(value)) == true, "\(String(describing: python.first))")
        #expect(python.last?.view?.same(Kit.view(try PickleReader.value(of: Self.protocol1))) == true,
                "\(String(describing: python.last))")
    }

    /// A protocol 1 pickle: `BINSTRING`, `SHORT_BINSTRING`, `BININT`,
    /// `BININT2`, `BINFLOAT`, `MARK`…`TUPLE`, `BINGET`.
    static let protocol1: [UInt8] = [0x5D, 0x71, 0] + Self.text("(U\u{03}abcq\u{01}T") + [4, 0, 0, 0] + Self.text("defgq\u{02}J")
        + [0xFF, 0xFF, 0xFF, 0xFF, 0x4D, 0, 1, 0x4B, 5, 0x47, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0]
        + Self.text("N(K\u{01}K\u{02}tq\u{03}h\u{01}}q\u{04}U\u{01}kq\u{05}U\u{01}vq\u{06}se.")

    @Test func protocol1BinaryOpcodes() throws {
        #expect(try PickleReader.value(of: Self.protocol1) == .list([
            .string("abc"), .string("defg"), .int(-1), .int(256), .int(5), .double(1.5), .null,
            .tuple([.int(1), .int(2)]), .string("abc"), .dict([.init(.string("k"), .string("v"))]),
        ]))
    }

    /// Tried: an old-style instance as Python 2 wrote it at protocol 2
    /// (`MARK` class `OBJ`, then `BUILD`) and at protocol 0 (`INST`): both
    /// read as the same object, and Swift writes it back as `OBJ` again.
    @Test func oldStyleInstances() throws {
        let atProtocol2: [UInt8] = [0x80, 2, 0x28] + Self.text("cpickle_fixtures\nOld\nq\u{01}oq\u{02}}q\u{03}U\u{01}aK\u{01}sb.")
        let atProtocol0 = Self.text("(ipickle_fixtures\nOld\np1\n(dp2\nS'a'\nI1\nsb.")
        let expected = PickleValue.object(.init(callable: .global(.init("pickle_fixtures", "Old")), construction: .instantiate,
                                                state: .dict([.init(.string("a"), .int(1))])))
        #expect(try PickleReader.value(of: atProtocol2) == expected)
        #expect(try PickleReader.value(of: atProtocol0) == expected)
        let written = try PickleWriter.pickle(expected)
        #expect(written == [0x80, 2, 0x28, 0x63] + Self.text("pickle_fixtures\nOld\n") + [0x71, 0, 0x6F, 0x71, 1, 0x7D, 0x71, 2]
                + [0x58, 1, 0, 0, 0, 0x61, 0x71, 3, 0x4B, 1, 0x73, 0x62, 0x2E])
        #expect(try PickleReader.value(of: written) == expected)
    }

    /// Tried: `PERSID` (a text persistent id) through a custom hook, and
    /// the default hook refusing ids that are no Durus OIDs.
    @Test func persistentIDHooks() throws {
        let pickle = Self.text("(lp0\nP42\na.")
        var reader = PickleReader(persistentLoad: { pid in
            guard case .string(let text) = pid, let oid = UInt64(text) else { return nil }
            return .persistent(.init(oid: oid, classGlobal: nil))
        })
        #expect(try reader.load(pickle).value == .list([.persistent(.init(oid: 42, classGlobal: nil))]))
        #expect(throws: PickleError(offset: 5, reason: .badPersistentID)) { try PickleReader.value(of: pickle) }
        // A bare 8-byte OID, and a pair whose OID is not 8 bytes.
        #expect(try PickleReader.value(of: [0x80, 2, 0x43, 8, 0, 0, 0, 0, 0, 0, 1, 2, 0x51, 0x2E])
            == .persistent(.init(oid: 258, classGlobal: nil)))
        #expect(throws: PickleError(offset: 7, reason: .badPersistentID)) {
            try PickleReader.value(of: [0x80, 2, 0x43, 1, 7, 0x4E, 0x86, 0x51, 0x2E])
        }
    }
}
