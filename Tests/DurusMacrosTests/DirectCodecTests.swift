import Foundation
import Testing
@testable import Durus
import DurusMacros
import DurusTestSupport

// `@Persistent` writes and reads states property by property (the direct
// path); `Persistent<State>` and `_DurusState` go through `Codable`. Both
// must write the same bytes and read each other's.

struct CodecPoint: Codable, Equatable {
    var x: Int
    var y: Double
    var label: String?
}

enum CodecTier: String, Codable, CaseIterable { case basic, silver, gold }

@Persistent final class CodecLeaf: PersistentObject {
    var number: Int = 0
}

/// A property of every kind the state codec supports.
@Persistent final class CodecEverything: PersistentObject {
    var int: Int = 0
    var string: String = ""
    var bool: Bool = false
    var double: Double = 0
    var float: Float = 0
    var int8: Int8 = 0
    var uint64: UInt64 = 0
    var optionalString: String? = "default"
    var optionalInt: Int? = 7
    var nestedOptional: Int?? = nil
    var strings: [String] = []
    var ints: [Int] = []
    var doubles: [Double] = []
    var data: Data = Data()
    var bytes: [UInt8] = []
    var date: Date = Date(timeIntervalSinceReferenceDate: 0)
    var uuid: UUID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    var byName: [String: Int] = [:]
    var byNumber: [Int: String] = [:]
    var names: Set<String> = []
    var point: CodecPoint = CodecPoint(x: 0, y: 0, label: nil)
    var points: [CodecPoint] = []
    var tier: CodecTier = .basic
    var leaf: CodecLeaf? = nil
    var leaves: [CodecLeaf] = []
    var leafByName: [String: CodecLeaf] = [:]
    var leafByNumber: [Int: CodecLeaf] = [:]
}

/// Everything a `CodecEverything` holds, objects by identity: what both paths must agree on.
struct CodecView: Equatable {
    var int: Int, string: String, bool: Bool, double: Double, float: Float, int8: Int8, uint64: UInt64
    var optionalString: String?, optionalInt: Int?, nestedOptional: Int??
    var strings: [String], ints: [Int], doubles: [Double], data: Data, bytes: [UInt8], date: Date, uuid: UUID
    var byName: [String: Int], byNumber: [Int: String], names: Set<String>
    var point: CodecPoint, points: [CodecPoint], tier: CodecTier
    var leaf: ObjectIdentifier?, leaves: [ObjectIdentifier], leafByName: [String: ObjectIdentifier]
    var leafByNumber: [Int: ObjectIdentifier]

    init(_ o: CodecEverything) {
        (int, string, bool, double, float, int8, uint64) = (o.int, o.string, o.bool, o.double, o.float, o.int8, o.uint64)
        (optionalString, optionalInt, nestedOptional) = (o.optionalString, o.optionalInt, o.nestedOptional)
        (strings, ints, doubles, data, bytes, date, uuid) = (o.strings, o.ints, o.doubles, o.data, o.bytes, o.date, o.uuid)
        (byName, byNumber, names, point, points, tier) = (o.byName, o.byNumber, o.names, o.point, o.points, o.tier)
        leaf = o.leaf.map(ObjectIdentifier.init)
        leaves = o.leaves.map(ObjectIdentifier.init)
        leafByName = o.leafByName.mapValues(ObjectIdentifier.init)
        leafByNumber = o.leafByNumber.mapValues(ObjectIdentifier.init)
    }

    init(_ s: CodecEverything._DurusState) {
        (int, string, bool, double, float, int8, uint64) = (s.int, s.string, s.bool, s.double, s.float, s.int8, s.uint64)
        (optionalString, optionalInt, nestedOptional) = (s.optionalString, s.optionalInt, s.nestedOptional)
        (strings, ints, doubles, data, bytes, date, uuid) = (s.strings, s.ints, s.doubles, s.data, s.bytes, s.date, s.uuid)
        (byName, byNumber, names, point, points, tier) = (s.byName, s.byNumber, s.names, s.point, s.points, s.tier)
        leaf = s.leaf.map(ObjectIdentifier.init)
        leaves = s.leaves.map(ObjectIdentifier.init)
        leafByName = s.leafByName.mapValues(ObjectIdentifier.init)
        leafByNumber = s.leafByNumber.mapValues(ObjectIdentifier.init)
    }
}


/// Encodes and decodes states outside a connection, references through a table of objects.
final class CodecBench {
    var objects: [OID: PersistentObject] = [:]
    var oids: [ObjectIdentifier: OID] = [:]

    func encoder() -> PersistentStateEncoder {
        PersistentStateEncoder(encoder: StateEncoder(reference: { [unowned self] object in
            if let known = oids[ObjectIdentifier(object)] { return known }
            let oid = OID(UInt64(oids.count + 1))
            oids[ObjectIdentifier(object)] = oid
            objects[oid] = object
            return oid
        }))
    }

    /// The object's state as `encodeState` writes it (for `@Persistent`: the direct path).
    func direct(_ object: PersistentObject) throws -> [UInt8] {
        var encoder = encoder()
        try object.encodeState(&encoder)
        return encoder.finish()
    }

    /// A state as the `Codable` path writes it.
    func codable<T: Encodable>(_ state: T) throws -> [UInt8] {
        var encoder = encoder()
        try encoder.encode(state)
        return encoder.finish()
    }

    func decoder(_ bytes: [UInt8]) throws -> PersistentStateDecoder {
        let reader = StateReader(bytes: bytes, resolve: { [unowned self] oid, _, _ in
            guard let object = objects[oid] else { throw DurusError.badState(oid: oid, reason: "unknown in this test") }
            return object
        })
        #expect(try reader.validate() == bytes.count)
        return PersistentStateDecoder(reader: reader)
    }
}

@Suite struct DirectCodecTests {
    func randomState(_ random: inout SeededRandom, leaves pool: [CodecLeaf]) -> CodecEverything._DurusState {
        func string() -> String {
            let alphabet = Array("abcé😀 \"\\\n\0xyz")
            return String((0 ..< Int.random(in: 0 ... 12, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
        }
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &random) ? make() : nil }
        var s = CodecEverything._DurusState()
        s.int = [Int.min, -1, 0, 1, Int.max, Int.random(in: .min ... .max, using: &random)].randomElement(using: &random)!
        s.string = string()
        s.bool = Bool.random(using: &random)
        s.double = [0, -0.0, .infinity, -.infinity, .pi, Double.random(in: -1e300 ... 1e300, using: &random)].randomElement(using: &random)!
        s.float = Float.random(in: -1e30 ... 1e30, using: &random)
        s.int8 = Int8.random(in: .min ... .max, using: &random)
        s.uint64 = [0, .max, UInt64.random(in: 0 ... .max, using: &random)].randomElement(using: &random)!
        s.optionalString = maybe(string)
        s.optionalInt = maybe { Int.random(in: -1000 ... 1000, using: &random) }
        switch Int.random(in: 0 ..< 3, using: &random) {
        case 0: s.nestedOptional = .none
        case 1: s.nestedOptional = .some(nil)
        default: s.nestedOptional = .some(Int.random(in: -5 ... 5, using: &random))
        }
        s.strings = (0 ..< Int.random(in: 0 ... 4, using: &random)).map { _ in string() }
        s.ints = (0 ..< Int.random(in: 0 ... 6, using: &random)).map { _ in Int.random(in: .min ... .max, using: &random) }
        s.doubles = (0 ..< Int.random(in: 0 ... 3, using: &random)).map { _ in Double.random(in: -10 ... 10, using: &random) }
        s.data = Data((0 ..< Int.random(in: 0 ... 20, using: &random)).map { _ in UInt8.random(in: 0 ... 255, using: &random) })
        s.bytes = (0 ..< Int.random(in: 0 ... 20, using: &random)).map { _ in UInt8.random(in: 0 ... 255, using: &random) }
        s.date = Date(timeIntervalSinceReferenceDate: Double.random(in: -1e9 ... 1e9, using: &random))
        s.uuid = UUID(uuid: (UInt8.random(in: 0 ... 255, using: &random), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                             UInt8.random(in: 0 ... 255, using: &random)))
        s.byName = Dictionary(uniqueKeysWithValues: (0 ..< Int.random(in: 0 ... 4, using: &random)).map { ("k\($0)", $0 * 3) })
        s.byNumber = Dictionary(uniqueKeysWithValues: (0 ..< Int.random(in: 0 ... 4, using: &random)).map { (-$0, string()) })
        s.names = Set((0 ..< Int.random(in: 0 ... 4, using: &random)).map { _ in string() })
        s.point = CodecPoint(x: Int.random(in: -9 ... 9, using: &random), y: 0.5, label: maybe(string))
        s.points = (0 ..< Int.random(in: 0 ... 3, using: &random)).map { CodecPoint(x: $0, y: -1, label: nil) }
        s.tier = CodecTier.allCases.randomElement(using: &random)!
        s.leaf = maybe { pool.randomElement(using: &random)! }
        s.leaves = (0 ..< Int.random(in: 0 ... 3, using: &random)).map { _ in pool.randomElement(using: &random)! }
        s.leafByName = Dictionary(uniqueKeysWithValues: (0 ..< Int.random(in: 0 ... 3, using: &random)).map { ("l\($0)", pool[$0]) })
        s.leafByNumber = Dictionary(uniqueKeysWithValues: (0 ..< Int.random(in: 0 ... 3, using: &random)).map { (-7 * $0, pool[$0]) })
        return s
    }

    func object(_ s: CodecEverything._DurusState) -> CodecEverything {
        let o = CodecEverything()
        (o.int, o.string, o.bool, o.double, o.float, o.int8, o.uint64) = (s.int, s.string, s.bool, s.double, s.float, s.int8, s.uint64)
        (o.optionalString, o.optionalInt, o.nestedOptional) = (s.optionalString, s.optionalInt, s.nestedOptional)
        (o.strings, o.ints, o.doubles, o.data, o.bytes, o.date, o.uuid) = (s.strings, s.ints, s.doubles, s.data, s.bytes, s.date, s.uuid)
        (o.byName, o.byNumber, o.names, o.point, o.points, o.tier) = (s.byName, s.byNumber, s.names, s.point, s.points, s.tier)
        (o.leaf, o.leaves, o.leafByName, o.leafByNumber) = (s.leaf, s.leaves, s.leafByName, s.leafByNumber)
        return o
    }

    /// 300 random states, every supported type at edge and random values:
    /// the direct path writes the `Codable` path's bytes (dictionaries and
    /// sets aside, whose order is the instance's: there, equal once read),
    /// each path reads what the other wrote, and what is read equals what was written.
    @Test func bothPathsWriteTheSameStateAndReadEachOther() throws {
        var random = SeededRandom(seed: 2026)
        let pool = (0 ..< 4).map { n in let leaf = CodecLeaf(); leaf.number = n; return leaf }
        for round in 0 ..< 300 {
            let bench = CodecBench()
            let state = randomState(&random, leaves: pool)
            let original = object(state)
            let direct = try bench.direct(original)
            let codable = try bench.codable(state)
            // Byte for byte, with each dictionary and set cut to one entry
            // (their order is the instance's, not the values').
            var small = state
            small.byName = small.byName.first.map { [$0.key: $0.value] } ?? [:]
            small.byNumber = small.byNumber.first.map { [$0.key: $0.value] } ?? [:]
            small.names = small.names.first.map { [$0] } ?? []
            small.leafByName = small.leafByName.first.map { [$0.key: $0.value] } ?? [:]
            small.leafByNumber = small.leafByNumber.first.map { [$0.key: $0.value] } ?? [:]
            #expect(try bench.direct(object(small)) == bench.codable(small), "round \(round): the paths wrote different bytes")

            // The direct path reads the `Codable` path's bytes ...
            let fromCodable = CodecEverything()
            try fromCodable.decodeState(bench.decoder(codable))
            #expect(CodecView(fromCodable) == CodecView(state), "round \(round)")
            // ... and the `Codable` path the direct path's.
            let decoded = try bench.decoder(direct).decode(CodecEverything._DurusState.self)
            #expect(CodecView(decoded) == CodecView(original), "round \(round)")
            // And the direct path its own, object references to the same instances.
            let fromDirect = CodecEverything()
            try fromDirect.decodeState(bench.decoder(direct))
            #expect(CodecView(fromDirect) == CodecView(original), "round \(round)")
        }
    }

    /// A record whose state lacks properties (written before they existed)
    /// or has one the type dropped: the direct path steps aside and schema
    /// evolution fills the defaults, as it does for `Persistent<State>`.
    @Test func aStateMissingPropertiesLoadsWithDefaults() throws {
        let bench = CodecBench()
        var out: [UInt8] = []
        StateValue.keyed([("int", .int(5)), ("gone", .string("x")), ("nestedOptional", .optional(.null))]).write(to: &out)
        let object = CodecEverything()
        object.optionalString = "changed"
        try object.decodeState(bench.decoder(out))
        #expect(object.int == 5)
        #expect(object.nestedOptional == .some(nil))
        #expect(object.optionalString == "default")   // the default, not what the instance held
        #expect(object.optionalInt == 7)
        #expect(object.tier == .basic)
    }

    /// A stored nil stays nil whatever the default, on the direct path too.
    @Test func aStoredNilReadsAsNil() throws {
        let bench = CodecBench()
        let original = CodecEverything()
        original.optionalString = nil
        original.optionalInt = nil
        let bytes = try bench.direct(original)
        let loaded = CodecEverything()
        try loaded.decodeState(bench.decoder(bytes))
        #expect(loaded.optionalString == nil)
        #expect(loaded.optionalInt == nil)
    }

    /// A state written by the `Codable` path before the direct path existed
    /// (captured bytes): the direct path reads it equal.
    @Test func aRecordOfTheCurrentFormatReadsBackEqual() throws {
        // `Account` of Models.swift (owner "alice", tier .gold, balance 10,
        // history [1, 2]), as `_DurusState`'s `Codable` conformance wrote it
        // at state format 3.
        let hex = FixtureHex.account
        let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(hex[hex.index(hex.startIndex, offsetBy: $0) ..< hex.index(hex.startIndex, offsetBy: $0 + 2)], radix: 16)! }
        let account = Account(owner: "")
        try account.decodeState(CodecBench().decoder(bytes))
        #expect(account.owner == "alice")
        #expect(account.balance == 10)
        #expect(account.history == [1, 2])
        #expect(account.tier == .gold)
        // And the direct path writes those very bytes.
        let again = Account(owner: "alice", balance: 10)
        again.history = [1, 2]
        again.tier = .gold
        #expect(try CodecBench().direct(again) == bytes)
    }
}

enum FixtureHex {
    static let account = "0a04056f776e65720705616c69636504746965720704676f6c640762616c616e6365031407686973746f72790c020202"
}
