import Durus
import DurusTestSupport
import Foundation
import Testing

/// One vector written by `scripts/make-record-vectors.py` with Durus 4.3's `pack_record`.
struct RecordVector: Decodable {
    var oid: String
    var data: String
    var refs: [String]
    var record: String
}

func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index ..< next], radix: 16)!)
        index = next
    }
    return bytes
}

func loadVectors(_ json: Data) throws -> [RecordVector] {
    try JSONDecoder().decode([RecordVector].self, from: json)
}

@Suite struct RecordTests {
    let vectors: [RecordVector]

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "records", withExtension: "json", subdirectory: "Vectors"))
        vectors = try loadVectors(try Data(contentsOf: url))
        #expect(vectors.count >= 20)
    }

    @Test func encodingMatchesDurusPackRecord() throws {
        for vector in vectors {
            let record = Record(oid: OID(UInt64(vector.oid)!), data: hexBytes(vector.data),
                                references: vector.refs.map { OID(UInt64($0)!) })
            #expect(record.bytes == hexBytes(vector.record), "vector for OID \(vector.oid)")
        }
    }

    @Test func parsingDurusRecordsRoundTrips() throws {
        for vector in vectors {
            let record = try Record(bytes: hexBytes(vector.record))
            #expect(record.oid == OID(UInt64(vector.oid)!))
            #expect(Array(record.data) == hexBytes(vector.data))
            #expect(record.references == vector.refs.map { OID(UInt64($0)!) })
            #expect(try Record(key: record.oid, bytes: record.bytes) == record)
        }
    }

    /// Regenerates the vectors with the real Durus 4.3 when the test command
    /// provides its venv's Python, so the committed file cannot drift from it.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DURUS_PYTHON"] != nil))
    func committedVectorsMatchLiveDurus() throws {
        let python = ProcessInfo.processInfo.environment["DURUS_PYTHON"]!
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/make-record-vectors.py").standardized
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let live = try loadVectors(output)
        #expect(live.map(\.record) == vectors.map(\.record))
    }

    /// 500 seeded lists of up to 40 references drawn from 20 OIDs (so with
    /// duplicates, and the object itself now and then): the stored list is
    /// the sorted set of them without the object.
    /// OIDs hash by a short mix of their own (not SipHash): sequential OIDs,
    /// and OIDs that differ only in high bits, still spread over a table's
    /// buckets as random values would (about 63% of 65,536 buckets filled by
    /// 65,536 keys), for any seed; and sets and dictionaries of them work.
    @Test func oidHashesSpreadOverBuckets() {
        let mask = (1 << 16) - 1
        for seed in [0, 1, 0x5EED, -1] {
            let sequential = Set((0 ..< 65_536).map { OID(UInt64($0))._rawHashValue(seed: seed) & mask })
            let highBits = Set((0 ..< 65_536).map { OID(UInt64($0) << 40)._rawHashValue(seed: seed) & mask })
            #expect(sequential.count > 40_000 && highBits.count > 40_000, "seed \(seed): \(sequential.count), \(highBits.count)")
        }
        var set = Set((0 ..< 10_000).map { OID(UInt64($0) * 7) })
        #expect(set.count == 10_000 && set.contains(OID(70)) && !set.contains(OID(71)))
        set.subtract((0 ..< 5_000).map { OID(UInt64($0) * 7) })
        let dictionary = Dictionary(uniqueKeysWithValues: set.map { ($0, $0.rawValue) })
        #expect(dictionary.count == 5_000 && dictionary[OID(35_000)] == 35_000 && dictionary[OID(70)] == nil)
    }

    @Test func referencesMatchASetModel() {
        var random = SeededRandom(seed: 19)
        for _ in 0 ..< 500 {
            let oid = OID(UInt64.random(in: 0 ..< 20, using: &random))
            let refs = (0 ..< Int.random(in: 0 ... 40, using: &random)).map { _ in
                OID(UInt64.random(in: 0 ..< 20, using: &random))
            }
            let record = Record(oid: oid, data: [7], references: refs)
            #expect(record.references == Set(refs).subtracting([oid]).sorted())
            #expect(record.oid == oid && Array(record.data) == [7])
        }
    }

    @Test func referencesAreSortedDeduplicatedAndExcludeSelf() {
        let record = Record(oid: 7, data: [1, 2, 3], references: [9, 3, 7, 9, 1])
        #expect(record.references == [1, 3, 9])
        #expect(record.referenceSet == [1, 3, 9])
    }

    @Test func unsortedDurusReferencesAreAccepted() throws {
        var bytes = Record(oid: 4, data: [], references: []).bytes
        for ref: OID in [9, 2, 9, 4] { ref.append(to: &bytes) }
        let record = try Record(bytes: bytes)
        #expect(record.references == [9, 2, 9, 4])
        #expect(record.referenceSet == [2, 9], "duplicates and the self-reference do not count")
    }

    @Test func malformedBytesAreTypedErrors() {
        #expect(throws: DurusError.self) { try Record(bytes: [0, 0, 0]) }
        var tooLong = Record(oid: 1, data: [1, 2], references: []).bytes
        tooLong[11] = 200
        #expect { try Record(bytes: tooLong) } throws: { error in
            guard case DurusError.malformedRecord(let why) = error else { return false }
            return why.contains("runs past the end")
        }
        var ragged = Record(oid: 1, data: [1], references: [2]).bytes
        ragged.removeLast()
        #expect(throws: DurusError.self) { try Record(bytes: ragged) }
    }

    @Test func wrongEmbeddedOIDIsRefused() {
        let record = Record(oid: 6, data: [1], references: [])
        #expect(throws: DurusError.oidMismatch(key: 5, embedded: 6)) { try Record(key: 5, bytes: record.bytes) }
    }

    @Test func oidBytesAreBigEndian() {
        #expect(OID(0x0102_0304_0506_0708).bytes == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(OID(bytes: [1, 2, 3, 4, 5, 6, 7, 8]) == OID(0x0102_0304_0506_0708))
        #expect(OID(bytes: [1, 2, 3]) == nil)
        #expect(OID.root.rawValue == 0)
    }
}

@Suite struct MemoryStorageTests {
    @Test func commitLoadAndRules() throws {
        let storage = MemoryStorage()
        let root = try storage.newOID()
        let child = try storage.newOID()
        #expect(root == .root)
        try storage.commit([
            Record(oid: root, data: [1], references: [child]),
            Record(oid: child, data: [2], references: []),
        ])
        #expect(try storage.load(child).data == [2])
        #expect(throws: DurusError.keyNotFound(99)) { try storage.load(99) }
        #expect(throws: DurusError.oidNotAllocated(50)) {
            try storage.commit([Record(oid: 50, data: [], references: [])])
        }
        let orphan = try storage.newOID()
        #expect(throws: ConflictError(.write, oids: [77])) {
            try storage.commit([Record(oid: orphan, data: [], references: [77])])
        }
        try storage.commit([Record(oid: orphan, data: [], references: [])])
        try storage.pack()
        #expect(try storage.sync() == [orphan])
        #expect(storage.count == 2)
        try storage.close()
        #expect(throws: DurusError.closed) { try storage.load(root) }
    }
}
