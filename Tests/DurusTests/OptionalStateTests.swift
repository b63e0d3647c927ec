@testable import Durus
import Testing

/// An object whose optionals have defaults that are not nil.
final class Noted: Persistent<Noted.State> {
    struct State: PersistentState, Equatable {
        var note: String? = "x"
        var twice: Int?? = 5
        var thrice: Int??? = 1
        var list: [Int??] = [4]
        var byName: [String: String??] = ["a": "a"]
    }
}

/// Optionals read back as they were committed: nil is told from a key that
/// an older record lacks (which takes the default), and a nil inside an
/// optional (`.some(nil)` of an `Int??`) from a nil one.
@Suite struct OptionalStateTests {
    /// A state with nil at every level its properties have.
    static var nils: Noted.State {
        var state = Noted.State()
        state.note = nil
        state.twice = .some(nil)
        state.thrice = .some(.some(nil))
        state.list = [nil, .some(nil), .some(3)]
        state.byName = ["none": .none, "some none": .some(.none), "a": "a"]
        return state
    }

    @Test func committedNilsReadBackExactly() throws {
        let database = try Database(storage: MemoryStorage(), root: Noted.self)
        try database.transaction { connection in try connection.root(Noted.self).state = Self.nils }
        let loaded = try database.open().root(Noted.self)
        #expect(loaded.state == Self.nils)

        // And back to values, over the nils.
        try database.transaction { connection in try connection.root(Noted.self).state = Noted.State() }
        #expect(try database.open().root(Noted.self).state == Noted.State())
    }

    @Test func nestedNilsRoundTripThroughTheCodec() throws {
        let bytes = try StateCodecTests.encode(Self.nils)
        #expect(try StateCodecTests.decode(Noted.State.self, bytes) == Self.nils)
        let twice: [Int??] = [.some(nil), nil, 1]
        #expect(try StateCodecTests.decode([Int??].self, try StateCodecTests.encode(twice)) == twice)
    }

    /// The form `StateValue` documents: nil is null, a nil inside an
    /// optional is wrapped once for each level it is inside, and a value
    /// that is not nil is itself.
    @Test func nilsAreWrittenAsTheFormatSays() throws {
        var offset = 0
        guard case .keyed(let pairs) = try StateValue.read(try StateCodecTests.encode(Self.nils), at: &offset) else {
            Issue.record("a struct is a keyed value")
            return
        }
        let stored = Dictionary(pairs, uniquingKeysWith: { _, last in last })
        #expect(stored["note"] == .null)
        #expect(stored["twice"] == .optional(.null))
        #expect(stored["thrice"] == .optional(.optional(.null)))
        #expect(stored["list"] == .array([.null, .optional(.null), .int(3)]))
        #expect(stored["byName"].map { value in
            guard case .keyed(let entries) = value else { return false }
            return Dictionary(entries, uniquingKeysWith: { $1 }) == ["none": .null, "some none": .optional(.null), "a": .string("a")]
        } == true)

        // A nil inside an optional, where the type has one level only, is a typed misfit.
        struct Note: Decodable { var note: String? }
        #expect(throws: DecodingError.self) {
            try StateCodecTests.decode(Note.self, StateValue.keyed([("note", .optional(.null))]).bytes)
        }
    }

    /// States of format 2, which left a nil optional out, load as they did:
    /// a key the record lacks takes the default (the schema-evolution rule),
    /// null is nil, and a value is that value.
    @Test func recordsOfTheFormatBeforeStillRead() throws {
        // Written by the format-2 encoder: {note: "kept", twice: 7, list: [nil, 3]}, and {list: []}.
        var kept = Noted.State()
        kept.note = "kept"
        kept.twice = 7
        kept.list = [nil, 3]
        #expect(try Self.load(Self.bytes("0a03046e6f746507046b657074057477696365030e046c6973740902000306")) == kept)
        var emptied = Noted.State()
        emptied.list = []
        #expect(try Self.load(Self.bytes("0a01046c6973740900")) == emptied)

        // A format-2 record of the root, loaded by a database.
        let state = StateValue.keyed([("twice", .null), ("list", .array([.null, .int(3)])), ("byName", .keyed([("b", .null)]))])
        let storage = try MemoryStorage.ofFormat2([(Noted.persistentTypeName, state.bytes, [])])
        var expected = Noted.State()
        expected.twice = nil
        expected.list = [nil, 3]
        expected.byName = ["b": nil]
        #expect(try Database(storage: storage, root: Noted.self).open().root(Noted.self).state == expected)
    }

    /// `bytes` loaded as an object's state is, defaults filled in.
    static func load(_ bytes: [UInt8]) throws -> Noted.State {
        let reader = StateReader(bytes: bytes, resolve: { oid, _, _ in throw DurusError.keyNotFound(oid) })
        _ = try reader.validate()
        return try PersistentStateDecoder(reader: reader).decode(Noted.State.self)
    }

    static func bytes(_ hex: String) -> [UInt8] {
        stride(from: 0, to: hex.count, by: 2).map { i in
            let start = hex.index(hex.startIndex, offsetBy: i)
            return UInt8(hex[start ..< hex.index(start, offsetBy: 2)], radix: 16)!
        }
    }

}

extension MemoryStorage {
    /// A store of `records` (type name, state, references) at OIDs 0, 1, …,
    /// each a record of state format 2.
    static func ofFormat2(_ records: [(name: String, state: [UInt8], references: [OID])]) throws -> MemoryStorage {
        let storage = MemoryStorage()
        var written: [Record] = []
        for record in records {
            var data = ObjectRecord.data(typeName: record.name, body: record.state, compress: false).bytes
            data[1] = 2
            written.append(Record(oid: try storage.newOID(), data: data, references: record.references))
        }
        try storage.commit(written)
        return storage
    }
}

extension StateValue {
    /// The binary form.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }
}
