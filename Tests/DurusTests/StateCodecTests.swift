@testable import Durus
import Foundation
import Testing

/// The state codec below the object layer: bytes written as the format
/// documents them decode in place, encoder and decoder agree with each other
/// and with the value tree tools read, and damage or a misfit is a typed
/// error that names where it is.
@Suite struct StateCodecTests {
    struct Sample: Codable, Equatable {
        enum Mood: Codable, Equatable { case calm, busy(level: Int, note: String?) }
        struct Point: Codable, Equatable { var x: Double; var y: Float }
        var name = "héllo ✓"
        var count = -42
        var small: Int8 = -8
        var big: UInt64 = .max
        var flag = true
        var ratio = 0.25
        var missing: String? = nil
        var present: Int? = 7
        var nilInside: Int?? = .some(nil)
        var bytes: [UInt8] = [0, 1, 255]
        var data = Data([9, 8, 7])
        var when = Date(timeIntervalSinceReferenceDate: 1_000_000.5)
        var id = UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
        var words = ["a", "", "ünï"]
        var numbers = [3, -1, Int.max, Int.min]
        var reals = [0.5, -2]
        var set: Set<Int> = [5, 1, 3]
        var byName: [String: [Int: [String]]] = ["one": [1: ["x"], -7: []], "": [:]]
        var byNumber: [Int: Point] = [0: Point(x: 1, y: 2), -3: Point(x: -0.5, y: 8)]
        var moods: [Mood] = [.calm, .busy(level: 3, note: nil), .busy(level: -1, note: "late")]
        var nested: [[Int?]] = [[1, nil], [], [nil]]
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = StateEncoder(reference: { _ in throw DurusError.readOnly })
        var bytes: [UInt8] = []
        try encoder.entry(value, path: []).write(to: &bytes)
        return bytes
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        var offset = 0
        try StateValue.skip(bytes, at: &offset)
        #expect(offset == bytes.count)
        let reader = StateReader(bytes: bytes, resolve: { oid, _, _ in throw DurusError.keyNotFound(oid) })
        #expect(try reader.validate() == offset, "the loading check (which also indexes a keyed state) agrees")
        return try reader.unbox(T.self, .at(0), parent: nil, key: nil)
    }

    @Test func everyKindOfValueRoundTrips() throws {
        let sample = Sample()
        let bytes = try Self.encode(sample)
        #expect(try Self.decode(Sample.self, bytes) == sample)
        // The value tree that tools read says the same, byte for byte.
        var offset = 0
        let tree = try StateValue.read(bytes, at: &offset)
        var rewritten: [UInt8] = []
        tree.write(to: &rewritten)
        #expect(rewritten == bytes)
        guard case .keyed(let pairs) = tree else { Issue.record("a struct is a keyed value"); return }
        #expect(pairs.first { $0.0 == "missing" }?.1 == .null,
                "a nil optional is stored as null: a key left out is one the record predates")
        #expect(pairs.first { $0.0 == "byNumber" }.map { pair in
            if case .keyed(let entries) = pair.1 { return Set(entries.map(\.0)) == ["0", "-3"] }
            return false
        } == true, "Int keys are stored in decimal, as Swift's Dictionary coding writes them")
    }

    /// Bytes built from the documented format (not by our encoder) decode:
    /// keys in any order, a repeated key (the last wins), a key the type does
    /// not have (ignored), integers where floats are declared, bytes read as
    /// an array of numbers, and dictionary keys as Swift writes them.
    @Test func theDocumentedFormatDecodes() throws {
        struct Shape: Decodable, Equatable {
            var title: String
            var size: Double
            var codes: [UInt16]
            var counts: [Int: Int]
            var labels: [String: String]
        }
        let value = StateValue.keyed([
            ("labels", .keyed([("a", .string("A")), ("b", .string("B"))])),
            ("size", .int(3)),
            ("title", .string("first")),
            ("unknown", .array([.null, .reference(OID(9), typeName: "Gone.Type")])),
            ("codes", .bytes([1, 200])),
            ("counts", .keyed([("10", .int(1)), ("-2", .uint(2)), ("007", .int(3)), ("+4", .int(4))])),
            ("title", .string("last")),
        ])
        var bytes: [UInt8] = []
        value.write(to: &bytes)
        let shape = try Self.decode(Shape.self, bytes)
        #expect(shape == Shape(title: "last", size: 3, codes: [1, 200], counts: [10: 1, -2: 2, 7: 3, 4: 4],
                               labels: ["a": "A", "b": "B"]))
    }

    /// Arrays of signed integers are written in delta form (state format 2):
    /// no tag per element, so a sorted array (a B-tree node's keys) takes
    /// about a byte an element. Every integer type and a Set read it; the
    /// per-element form of format 1 still reads; wrapping differences (Int.min
    /// after Int.max) and a value too big for the declared type are handled.
    @Test func integerArraysAreWrittenAsDeltas() throws {
        let sorted = Array(stride(from: 1_000_000, to: 1_000_000 + 200 * 37, by: 37))
        let bytes = try Self.encode(sorted)
        #expect(bytes[0] == Tag.intDeltas.rawValue)
        #expect(bytes.count <= 2 + 3 + 4 + 199, "the first value in 3 bytes, each later one in 1: \(bytes.count)")
        #expect(try Self.decode([Int].self, bytes) == sorted)
        #expect(try Self.decode([Int64].self, bytes) == sorted.map(Int64.init))
        #expect(try Self.decode([UInt32].self, bytes) == sorted.map(UInt32.init))
        #expect(try Self.decode(Set<Int>.self, bytes) == Set(sorted))
        #expect(try Self.decode([Double].self, bytes) == sorted.map(Double.init))
        #expect(throws: DecodingError.self, "1,000,000 is no UInt16") { try Self.decode([UInt16].self, bytes) }

        let extremes = [Int.max, Int.min, 0, -1, Int.max, 5]
        #expect(try Self.decode([Int].self, try Self.encode(extremes)) == extremes)
        #expect(try Self.decode([Int8].self, try Self.encode([Int8]([-128, 127, 0]))) == [-128, 127, 0])
        #expect(try Self.encode([Int]()) == [Tag.array.rawValue, 0], "an empty array stays a plain one")
        #expect(try Self.decode([Int].self, [Tag.intDeltas.rawValue, 0]) == [])

        // Format 1's form, each element tagged, as records written before hold it.
        var tagged: [UInt8] = [Tag.array.rawValue, UInt8(extremes.count)]
        for value in extremes {
            tagged.append(Tag.int.rawValue)
            Varint.write(Varint.zigzag(Int64(value)), to: &tagged)
        }
        #expect(try Self.decode([Int].self, tagged) == extremes)
        #expect(try Self.decode([Int64].self, tagged) == extremes.map(Int64.init))
        var offset = 0
        #expect(try StateValue.read(tagged, at: &offset) == .array(extremes.map { .int(Int64($0)) }))

        // A mixed array keeps its tags; a generic one of Int64 is packed like [Int].
        #expect(try Self.encode([1, nil, 3] as [Int?])[0] == Tag.array.rawValue)
        #expect(try Self.encode([Int64(7), 9]) == (try Self.encode([7, 9])))
    }

    /// A record's header names the state format: this build writes 3 and
    /// reads 1 and 2 (whose states are subsets) and 3; a later one is a
    /// typed error.
    @Test func recordHeadersNameTheFormatVersion() throws {
        var body: [UInt8] = []
        StateValue.keyed([("n", .array([.int(4), .int(5)]))]).write(to: &body)
        let written = ObjectRecord.data(typeName: "T", body: body, compress: false).bytes
        #expect(written[1] == 3)
        #expect(try ObjectRecord.parse(written[...], oid: OID(1)).body == body)
        for earlier: UInt8 in [1, 2] {
            var record = written
            record[1] = earlier
            #expect(try ObjectRecord.parse(record[...], oid: OID(1)).body == body)
        }
        var later = written
        later[1] = 4
        #expect(throws: DurusError.badState(oid: OID(1), reason: "state format version 4; this build reads versions 1 to 3")) {
            try ObjectRecord.parse(later[...], oid: OID(1))
        }
    }

    @Test func aMisfitNamesItsPath() throws {
        struct Item: Codable { var value: Int }
        struct Holder: Codable { var items: [Int: Item] }
        var bytes: [UInt8] = []
        StateValue.keyed([("items", .keyed([("5", .keyed([("value", .string("five"))]))]))]).write(to: &bytes)
        #expect { try Self.decode(Holder.self, bytes) } throws: { error in
            guard case DecodingError.typeMismatch(_, let context) = error else { return false }
            return context.codingPath.map(\.stringValue) == ["items", "5", "value"]
        }
        var overflow: [UInt8] = []
        StateValue.keyed([("value", .int(300))]).write(to: &overflow)
        struct Small: Decodable { var value: Int8 }
        #expect(throws: DecodingError.self) { try Self.decode(Small.self, overflow) }
        var badKey: [UInt8] = []
        StateValue.keyed([("items", .keyed([("five", .keyed([("value", .int(5))]))]))]).write(to: &badKey)
        #expect(throws: DecodingError.self, "a key that is no Int") { try Self.decode(Holder.self, badKey) }
    }

    /// A dictionary of persistent objects (a bucket) resolves each reference
    /// through the connection's resolver; a repeated key keeps the last, and
    /// a value that is no reference, or a reference to another type, is a
    /// type mismatch naming its key.
    @Test func aDictionaryOfObjectsResolvesEachReference() throws {
        final class Apple: PersistentObject {}
        final class Pear: PersistentObject {}
        struct Bucket: Codable { var items: [Int: Apple] }
        let apples = (0 ..< 3).map { _ in Apple() }
        let pear = Pear()
        func decode(_ entries: [(String, StateValue)]) throws -> Bucket {
            var bytes: [UInt8] = []
            StateValue.keyed([("items", .keyed(entries))]).write(to: &bytes)
            let reader = StateReader(bytes: bytes, resolve: { oid, _, _ in oid.rawValue < 3 ? apples[Int(oid.rawValue)] : pear })
            _ = try reader.validate()
            return try reader.unbox(Bucket.self, .at(0), parent: nil, key: nil)
        }
        let ref = { (n: UInt64) in StateValue.reference(OID(n), typeName: "Apple") }
        let bucket = try decode([("1", ref(0)), ("2", ref(1)), ("1", ref(2))])
        #expect(bucket.items.count == 2)
        #expect(bucket.items[1] === apples[2] && bucket.items[2] === apples[1])
        for bad in [ref(7), StateValue.int(7)] {
            #expect { try decode([("1", ref(0)), ("5", bad)]) } throws: { error in
                guard case DecodingError.typeMismatch(_, let context) = error else { return false }
                return context.codingPath.map(\.stringValue) == ["items", "5"]
            }
        }
    }

    /// A dictionary of persistent objects is written as a keyed value of
    /// references, byte for byte what `StateValue`'s own writer makes of it,
    /// each value's own type named when the declared type is their
    /// superclass, and read back as the same instances. An object the
    /// resolver refuses fails the encode.
    @Test func aDictionaryOfObjectsIsWrittenAsAKeyedValueOfReferences() throws {
        class Fruit: PersistentObject {}
        final class Apple: Fruit {}
        final class Pear: Fruit {}
        let fruits: [Fruit] = [Apple(), Pear(), Apple(), Apple(), Pear()]
        let oids = Dictionary(uniqueKeysWithValues: fruits.enumerated().map { (ObjectIdentifier($1), OID(UInt64(100 + $0))) })
        let encoder = StateEncoder(reference: { object in
            guard let oid = oids[ObjectIdentifier(object)] else { throw DurusError.readOnly }
            return oid
        })
        let byNumber = Dictionary(uniqueKeysWithValues: fruits.enumerated().map { ($0 * 7 - 10, $1) })
        let byName = Dictionary(uniqueKeysWithValues: fruits.enumerated().map { ("fruit \($0)", $1) })
        func expected<K>(_ dictionary: [K: Fruit], _ key: (K) -> String) -> [UInt8] {
            var bytes: [UInt8] = []
            StateValue.keyed(dictionary.map { entry in
                (key(entry.key), .reference(oids[ObjectIdentifier(entry.value)]!,
                                            typeName: PersistentTypes.name(of: type(of: entry.value))))
            }).write(to: &bytes)
            return bytes
        }
        var numbered: [UInt8] = []
        try encoder.entry(byNumber, path: []).write(to: &numbered)
        #expect(numbered == expected(byNumber) { String($0) })
        var named: [UInt8] = []
        try encoder.entry(byName, path: []).write(to: &named)
        #expect(named == expected(byName) { $0 })
        #expect(!named.isEmpty && PersistentTypes.name(of: Apple.self) != PersistentTypes.name(of: Pear.self))

        let reader = StateReader(bytes: numbered, resolve: { oid, _, _ in fruits[Int(oid.rawValue) - 100] })
        _ = try reader.validate()
        let decoded = try reader.unbox([Int: Fruit].self, .at(0), parent: nil, key: nil)
        #expect(decoded.count == byNumber.count && decoded.allSatisfy { byNumber[$0.key] === $0.value })

        #expect(throws: DurusError.readOnly) { try encoder.entry([1: Apple()], path: []) }
    }

    /// Damage is found before any decoding, even inside a value the type
    /// would ignore, and a cut anywhere is an error, never a crash.
    @Test func damageIsATypedErrorWherever() throws {
        struct Tiny: Decodable { var kept: Int }
        var hidden: [UInt8] = []
        StateValue.keyed([("kept", .int(1)), ("ignored", .array([.uint(2)]))]).write(to: &hidden)
        #expect(try Self.decode(Tiny.self, hidden).kept == 1)
        // The last value is the uint inside "ignored": its tag is 2 bytes from the end.
        hidden[hidden.count - 2] = 0xEE
        var offset = 0
        #expect(throws: StateError.malformed("unknown value tag 238 at byte \(hidden.count - 2)")) {
            try StateValue.skip(hidden, at: &offset)
        }
        let bytes = try Self.encode(Sample())
        for cut in 0 ..< bytes.count {
            var offset = 0
            #expect(throws: StateError.self, "cut at \(cut)") {
                try StateValue.skip(Array(bytes.prefix(cut)), at: &offset)
            }
            #expect(throws: StateError.self, "cut at \(cut), as loading checks it") {
                _ = try StateReader(bytes: Array(bytes.prefix(cut)), resolve: { oid, _, _ in throw DurusError.keyNotFound(oid) }).validate()
            }
        }
    }
}
