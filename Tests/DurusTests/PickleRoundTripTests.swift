@testable import Durus
import Testing

/// Swift reads what Python Durus wrote and writes it back: the same bytes,
/// or (where Python's memo shared by identity what a value cannot) bytes
/// that Durus reads as the same objects.
struct PickleRoundTripTests {
    typealias Kit = PickleTestKit

    /// Tried: every record of the Python-built store, read and composed
    /// again (compressed, as Durus writes), compared byte for byte with what
    /// Durus wrote. The one record the script builds to diverge (a list
    /// aliased twice, two equal strings that are distinct objects) must
    /// differ, and read back equal.
    @Test func pythonRecordsComeBackByteForByte() throws {
        let made = try Kit.made.get()
        var identical = 0
        for record in made.records {
            let data = Kit.bytes(hex: record.data)
            let object = try PickleRecord(data: data, oid: OID(record.oid))
            let again = try object.data()
            if made.divergent.contains(record.oid) {
                #expect(again != data)
                #expect(try PickleRecord(data: again) == object)
            } else {
                #expect(again == data, "OID \(record.oid): \(Kit.firstDifference(data, again))")
                if again == data { identical += 1 }
            }
        }
        #expect(identical == made.records.count - made.divergent.count)
    }

    /// Tried: the records Swift composed again, stored in a Durus
    /// FileStorage and loaded through a Connection: each object's class,
    /// state and references as Durus first wrote them. The divergent record
    /// Durus then saves again exactly as Swift wrote it: once loaded from
    /// Swift's bytes, its shared strings and unaliased lists are Durus's too.
    /// (The others are Python's own bytes, checked above; Python does not
    /// save a reloaded set or plain object byte for byte itself: the set's
    /// order and the interned attribute names change.)
    @Test func recordsWrittenAgainLoadInDurusAsBefore() throws {
        let made = try Kit.made.get()
        var records: [Record] = []
        for record in made.records {
            let object = try PickleRecord(data: Kit.bytes(hex: record.data), oid: OID(record.oid))
            records.append(try object.record(oid: OID(record.oid)))
        }
        let loaded = try Kit.loadInDurus(records)
        #expect(loaded.count == made.records.count)
        for (record, stored) in zip(made.records, records) {
            let durus = try #require(loaded[OID(record.oid)])
            #expect(durus.klass == record.klass)
            #expect(durus.state.same(record.state), "OID \(record.oid): \(durus.state.description.prefix(1000))")
            #expect(durus.refs.sorted() == stored.references.map(\.rawValue))
            if made.divergent.contains(record.oid) {
                #expect(Kit.bytes(hex: durus.resaved) == Array(stored.data), "OID \(record.oid)")
            }
        }
    }

    /// Tried: every sample value Python pickled at protocol 2, read and
    /// written again, compared byte for byte with Python's pickle.
    @Test func samplesComeBackByteForByte() throws {
        for sample in try Kit.samples.get() {
            let python = Kit.bytes(hex: sample.p2)
            let swift = try PickleWriter.pickle(PickleReader.value(of: python))
            #expect(swift == python, "\(sample.name): Swift \(Kit.hex(swift).prefix(400))\nPython \(sample.p2.prefix(400))")
        }
    }
}
