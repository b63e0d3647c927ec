@testable import Durus
import Testing

/// Python Durus 4.3 writes; Swift reads. Python builds a FileStorage of every
/// kind of object (a user class holding every kind of value, the persistent
/// collections, a BTree of 300 entries, shared references, a self-reference
/// and a cycle), then prints each record with Durus's own view of its state.
struct PythonToSwiftPickleTests {
    typealias Kit = PickleTestKit

    /// Tried: each of the records Durus wrote, read with `PickleRecord` and
    /// compared with what Durus's ObjectReader makes of it: class, state
    /// (every value, nested), and the references Durus filed with the record.
    @Test func everyRecordReadsAsDurusReadsIt() throws {
        let made = try Kit.made.get()
        var classes: Set<String> = []
        for record in made.records {
            let data = Kit.bytes(hex: record.data)
            #expect(PickleRecord.isDurusPickle(data))
            let object = try PickleRecord(data: data, oid: OID(record.oid))
            classes.insert(object.classGlobal.description)
            #expect([object.classGlobal.module, object.classGlobal.name] == record.klass)
            let view = Kit.view(object.state)
            #expect(view.same(record.state), "OID \(record.oid): Swift read \(view.description.prefix(2000))\nDurus read \(record.state.description.prefix(2000))")
            // Durus files the references without the object itself.
            #expect(object.references.filter { $0 != OID(record.oid) }.map(\.rawValue) == record.refs.sorted(), "OID \(record.oid)")
        }
        // The corpus is what it claims to be: nothing silently missing.
        #expect(made.records.count > 60)
        #expect(classes == ["pickle_fixtures.Thing", "durus.persistent_dict.PersistentDict", "durus.persistent_list.PersistentList",
                            "durus.persistent_set.PersistentSet", "durus.btree.BTree", "durus.btree.BNode16"])
    }

    /// Tried: the user-class record, checked by hand beyond the views:
    /// kinds Swift must produce (bytes from `_codecs.encode`, sets from
    /// `set([…])`, big integers), the self-reference and the shared tuple.
    @Test func theUserObjectHoldsWhatPythonPutThere() throws {
        let made = try Kit.made.get()
        let root = try PickleRecord(data: Kit.bytes(hex: made.records[0].data), oid: .root)
        guard case .persistent(let thingReference) = root.state["data"]?["thing"] else {
            Issue.record("the root holds no reference to the thing: \(root.state)")
            return
        }
        #expect(thingReference.classGlobal == PickleValue.Global("pickle_fixtures", "Thing"))
        let record = try #require(made.records.first { $0.oid == thingReference.oid })
        let thing = try PickleRecord(data: Kit.bytes(hex: record.data), oid: OID(record.oid)).state
        #expect(thing["blob"] == .bytes(Array(0 ... 255)))
        #expect(thing["no_bytes"] == .bytes([]))
        #expect(thing["one_byte"] == .bytes([0xE9]))
        #expect(thing["accented"] == .string("héllo wörld €"))
        #expect(thing["astral"] == .string("🐍"))
        #expect(thing["max64"] == .int(.max))
        #expect(thing["min64"] == .int(.min))
        #expect(thing["over64"] == .bigInt(.init(littleEndian: [0, 0, 0, 0, 0, 0, 0, 0x80, 0])))
        #expect(thing["negative_huge"] == .bigInt(.init(littleEndian: [UInt8](repeating: 0, count: 12) + [0xF0])))
        #expect(thing["set"] == .set([.int(1), .int(2), .int(3)]))
        #expect(thing["no_set"] == .set([]))
        #expect(thing["no_frozenset"] == .frozenset([]))
        #expect(thing["shared_1"] == thing["shared_2"])
        #expect(thing["me"] == .persistent(thingReference))
        #expect(thing["klass"] == .global(.init("pickle_fixtures", "Plain")))
        guard case .object(let plain) = thing["plain"] else {
            Issue.record("plain is \(String(describing: thing["plain"]))")
            return
        }
        #expect(plain.construction == .newObject && plain.callable == .global(.init("pickle_fixtures", "Plain")))
        #expect(plain.state == .dict([.init(.string("a"), .int(1)), .init(.string("b"), .list([.int(2)]))]))
        if case .double(let nan) = thing["nan"] { #expect(nan.isNaN) } else { Issue.record("nan is not a double") }
        if case .list(let many) = thing["many"] { #expect(many == (0 ..< 2500).map { .int(Int64($0)) }) }
        else { Issue.record("many is not a list") }
    }

    /// Tried: every sample value, pickled by Python at protocols 0, 1, 2, 3
    /// and 4, read by `PickleReader` and compared with the value's view.
    /// Protocols 0 and 1 build plain objects with `copy_reg._reconstructor`,
    /// which the view compares as the `NEWOBJ` it stands for; a persistent id
    /// at protocol 0 is the `str()` of the tuple, which Durus never writes.
    @Test func samplesReadAtEveryProtocol() throws {
        let samples = try Kit.samples.get()
        #expect(samples.count > 50)
        for sample in samples {
            for (level, hex) in sample.protocols.enumerated() where !(sample.name == "persistent" && level == 0) {
                let value = try PickleReader.value(of: Kit.bytes(hex: hex))
                #expect(Kit.view(Self.reconstructed(value)).same(sample.view), "\(sample.name) at protocol \(level): \(Kit.view(value).description.prefix(2000))")
            }
        }
    }

    /// `copy_reg._reconstructor(cls, object, None)`, anywhere in `value`, as
    /// the `NEWOBJ` of `cls`.
    static func reconstructed(_ value: PickleValue) -> PickleValue {
        Kit.transform(value) { value in
            guard case .object(var object) = value, object.callable == .global(.init("copy_reg", "_reconstructor")),
                  object.arguments.count == 3, object.arguments[1] == .global(.init("__builtin__", "object")),
                  object.arguments[2] == .null else { return value }
            object.callable = object.arguments[0]
            object.arguments = []
            object.construction = .newObject
            return .object(object)
        }
    }

    /// Tried: the memo between two loads of one reader, as a Durus state
    /// pickle refers to its class pickle's memo: a memoized container the
    /// first value holds carries over as it ended; one it dropped does not;
    /// `clearMemo()` forgets both.
    @Test func memoCarriesOverBetweenLoads() throws {
        var reader = PickleReader()
        #expect(try reader.load([0x80, 2, 0x5D, 0x71, 0, 0x4B, 1, 0x61, 0x2E]).value == .list([.int(1)]))
        #expect(try reader.load([0x80, 2, 0x68, 0, 0x2E]).value == .list([.int(1)]))
        #expect(try reader.load([0x80, 2, 0x5D, 0x71, 1, 0x30, 0x4E, 0x2E]).value == .null)
        #expect(throws: PickleError(offset: 2, reason: .memoMissing(1))) { try reader.load([0x80, 2, 0x68, 1, 0x2E]) }
        #expect(try reader.load([0x80, 2, 0x4B, 7, 0x71, 2, 0x2E]).value == .int(7))
        reader.clearMemo()
        #expect(throws: PickleError(offset: 2, reason: .memoMissing(2))) { try reader.load([0x80, 2, 0x68, 2, 0x2E]) }
    }
}
