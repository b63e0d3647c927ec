@testable import Durus
import DurusTestSupport
import Testing

/// Damaged and hostile input: the reader ends every input in a value or a
/// typed `PickleError` (the `throws(PickleError)` signatures make any other
/// error impossible; a trap would end the test process), within bounded
/// time and memory.
struct PickleFuzzTests {
    typealias Kit = PickleTestKit

    /// Lengths that overflow, go negative or point far past the end.
    static let hugeLengths: [[UInt8]] = [
        [0xFF, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0x7F], [0x00, 0x00, 0x00, 0x80], [0xFF],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ]
    /// Opcodes worth inserting: lengths, marks, memo, stack and builders.
    static let opcodes = Array("XTUVSBCLIJKM(ta]}e)uqhrjgpQRb.0123\u{7F}".utf8) + Array(0x80 ... 0x98)

    static func mutate(_ input: [UInt8], _ random: inout SeededRandom) -> [UInt8] {
        var bytes = input
        for _ in 0 ..< Int.random(in: 1 ... 3, using: &random) {
            let at = Int.random(in: 0 ... bytes.count, using: &random)
            switch Int.random(in: 0 ..< 8, using: &random) {
            case 0 where at < bytes.count: bytes[at] ^= 1 << UInt8.random(in: 0 ..< 8, using: &random)
            case 1 where at < bytes.count: bytes[at] = .random(in: 0 ... 255, using: &random)
            case 2: bytes.removeSubrange(at...)
            case 3: bytes.insert(contentsOf: (0 ..< Int.random(in: 1 ... 8, using: &random)).map { _ in .random(in: 0 ... 255, using: &random) }, at: at)
            case 4: bytes.removeSubrange(at ..< min(bytes.count, at + Int.random(in: 1 ... 16, using: &random)))
            case 5:
                let huge = hugeLengths.randomElement(using: &random)!
                bytes.replaceSubrange(at ..< min(bytes.count, at + huge.count), with: huge)
            case 6:
                let start = Int.random(in: 0 ... bytes.count, using: &random)
                bytes.insert(contentsOf: bytes[start ..< min(bytes.count, start + Int.random(in: 1 ... 64, using: &random))], at: at)
            default: bytes.insert(opcodes.randomElement(using: &random)!, at: at)
            }
        }
        return bytes
    }

    /// Python's records (compressed as stored, and uncompressed) and sample
    /// pickles of protocols 0 to 4, the small ones: each input is mutated
    /// many times.
    static func corpus() throws -> (records: [[UInt8]], pickles: [[UInt8]]) {
        var records: [[UInt8]] = []
        for record in try Kit.made.get().records where record.data.count < 8000 {
            let data = Kit.bytes(hex: record.data)
            records.append(data)
            records.append(try PickleRecord(data: data).data(compressed: false))
        }
        let pickles = try Kit.samples.get().flatMap(\.protocols).map { Kit.bytes(hex: $0) }.filter { $0.count < 4000 }
        return (records, pickles)
    }

    /// Tried: 12,000 mutated records and 12,000 mutated pickles (bit flips,
    /// random bytes, truncation, insertion, deletion, huge length fields,
    /// duplicated chunks, inserted opcodes; seeded). Each decode ends in a
    /// value or a `PickleError` within a second; what decodes writes and
    /// reads back equal; the errors are of many kinds, with offsets inside
    /// the input.
    @Test func mutatedInputEndsInValueOrTypedError() throws {
        let (records, pickles) = try Self.corpus()
        #expect(records.count > 40 && pickles.count > 200)
        var random = SeededRandom(seed: 0xD0_5EED)
        var decoded = 0, unwritable = 0, reasons: Set<String> = []
        for round in 0 ..< 24_000 {
            let asRecord = round % 2 == 0
            let input = Self.mutate(asRecord ? records[round / 2 % records.count] : pickles[round / 2 % pickles.count], &random)
            do throws(PickleError) {
                let record = asRecord ? try PickleRecord(data: input) : nil
                let value = if let record { record.state } else { try PickleReader.value(of: input) }
                decoded += 1
                // What reads, writes and reads back equal; only a global
                // with a newline in its name (from protocol 4's
                // STACK_GLOBAL) has no protocol 2 pickle.
                do throws(PickleError) {
                    if let record {
                        let again = try PickleRecord(data: record.data())
                        #expect(again == record)
                    } else {
                        let again = try PickleReader.value(of: PickleWriter.pickle(value))
                        #expect(again == value)
                    }
                } catch {
                    #expect("\(error)".contains("has a newline in its name"), "\(error)")
                    unwritable += 1
                }
            } catch {
                reasons.insert(String("\(error.reason)".prefix { $0 != "(" }))
                #expect(error.offset >= 0 && (error.inInflatedState || error.offset <= input.count), "\(error)")
            }
        }
        #expect(decoded > 500, "only \(decoded) mutated inputs decoded")
        #expect(unwritable < decoded / 100)
        #expect(reasons.isSuperset(of: ["unknownOpcode", "truncated", "badLength", "stackUnderflow", "memoMissing",
                                         "malformed", "badCompressedState", "notADurusRecord"]), "\(reasons)")
    }

    /// Tried: inputs built to exhaust the reader, each with the error it
    /// must end in, where it must say it happened.
    @Test(arguments: [
        // A tuple of two of the tuple before it, 64 deep: 2^64 parts once expanded.
        ("sharing bomb", [0x80, 2, 0x29] + Array(Array(repeating: [UInt8]([0x32, 0x86]), count: 64).joined()) + [0x2E],
         PickleError(offset: 131, reason: .limitExceeded("a value of more than 4194304 parts"))),
        // 100,000 nested lists.
        ("nesting bomb", Array(repeating: 0x5D, count: 100_000) + Array(repeating: 0x61, count: 99_999) + [0x2E],
         PickleError(offset: 199_999, reason: .limitExceeded("values nested deeper than 1000"))),
        ("a string of 4 GiB", [0x80, 2, 0x58, 0xFF, 0xFF, 0xFF, 0xFF, 0x61], PickleError(offset: 2, reason: .badLength(0xFFFF_FFFF))),
        ("a negative BINSTRING", [0x54, 0xFF, 0xFF, 0xFF, 0xFF, 0x61], PickleError(offset: 0, reason: .badLength(-1))),
        ("LONG4 of 2 GiB", [0x8B, 0xFF, 0xFF, 0xFF, 0x7F, 0], PickleError(offset: 0, reason: .badLength(0x7FFF_FFFF))),
        ("BINBYTES8 of 2^64", [0x8E] + Array(repeating: 0xFF, count: 8), PickleError(offset: 0, reason: .badLength(.max))),
        ("an integer of 100,000 digits", [0x49] + Array(repeating: 0x39, count: 100_000) + [0x0A, 0x2E],
         PickleError(offset: 0, reason: .limitExceeded("an integer of more than 4300 digits"))),
        ("a list that contains itself", [0x80, 2, 0x5D, 0x71, 0, 0x68, 0, 0x61, 0x2E],
         PickleError(offset: 8, reason: .unsupported("a value that contains itself"))),
        ("an unknown opcode", [0x80, 2, 0xFF], PickleError(offset: 2, reason: .unknownOpcode(0xFF))),
        ("a length cut short", [0x80, 2, 0x58, 5, 0], PickleError(offset: 2, reason: .truncated)),
        ("a string cut short", [0x80, 2, 0x58, 5, 0, 0, 0, 0x61], PickleError(offset: 2, reason: .badLength(5))),
        ("no STOP", [0x80, 2, 0x4E], PickleError(offset: 3, reason: .truncated)),
        ("APPEND to nothing", [0x80, 2, 0x61, 0x2E], PickleError(offset: 2, reason: .stackUnderflow)),
        ("a mark never set", [0x80, 2, 0x65], PickleError(offset: 2, reason: .noMark)),
        ("GET of nothing", [0x80, 2, 0x68, 5], PickleError(offset: 2, reason: .memoMissing(5))),
        ("text with no newline", [0x63, 0x61, 0x62], PickleError(offset: 0, reason: .truncated)),
        ("UTF-8 that is not", [0x8C, 2, 0xC3, 0x28, 0x2E], PickleError(offset: 0, reason: .malformed("SHORT_BINUNICODE is not valid UTF-8"))),
        ("protocol 9", [0x80, 9], PickleError(offset: 0, reason: .unsupported("protocol 9"))),
    ] as [(String, [UInt8], PickleError)])
    func hostileInput(_ name: String, _ bytes: [UInt8], _ expected: PickleError) {
        #expect(throws: expected, "\(name)") { try PickleReader.value(of: bytes) }
    }

    /// Tried: the costs that grow faster than the input: 50 integers of
    /// 4,300 digits (Python's own limit; parsing is quadratic), and a
    /// persistent id that is a list of 100,000 items (ids are bounded to 64
    /// parts, so many of them cannot each cost the whole list).
    @Test func quadraticCostsStayBounded() throws {
        let digits: [UInt8] = [0x49] + Array(repeating: UInt8(ascii: "7"), count: 4300) + [0x0A, 0x30]
        let integers: [UInt8] = [0x80, 2] + Array(Array(repeating: digits, count: 50).joined()) + [0x4E, 0x2E]
        #expect(try PickleReader.value(of: integers) == .null)
        let hugePID: [UInt8] = [0x80, 2, 0x5D, 0x71, 0, 0x28] + Array(Array(repeating: [UInt8]([0x4B, 1]), count: 100_000).joined())
            + [0x65, 0x51, 0x2E]
        var acceptsAny = PickleReader(persistentLoad: { _ in .null })
        #expect(throws: PickleError(offset: 200_007, reason: .badPersistentID)) { try acceptsAny.load(hugePID) }
        #expect(try acceptsAny.load([0x80, 2, 0x4B, 1, 0x51, 0x2E]).value == .null)
    }

    /// The memo across two loads of one reader, at a small index and at one
    /// far past any Python writes (1,000,000): both come back, an index
    /// never put is `memoMissing`, and the far one costs one entry.
    @Test func memoIndicesNearAndFar() throws {
        let far = withUnsafeBytes(of: UInt32(1_000_000).littleEndian) { Array($0) }
        var reader = PickleReader()
        _ = try reader.load([0x80, 2, 0x4B, 7, 0x72] + far + [0x71, 3, 0x2E])
        #expect(try reader.load([0x80, 2, 0x6A] + far + [0x68, 3, 0x86, 0x2E]).value == .tuple([.int(7), .int(7)]))
        #expect(throws: PickleError(offset: 2, reason: .memoMissing(4))) { try reader.load([0x80, 2, 0x68, 4, 0x2E]) }
        var limits = PickleReader.Limits()
        limits.maxMemo = 2
        var small = PickleReader(limits: limits)
        _ = try small.load([0x80, 2, 0x4B, 7, 0x72] + far + [0x71, 3, 0x2E])
        #expect(throws: PickleError(offset: 4, reason: .limitExceeded("more than 2 memo entries"))) {
            try small.load([0x80, 2, 0x4B, 8, 0x71, 4, 0x2E])
        }
    }

    /// Tried: the memo and inflation limits, and record data that is not a
    /// Durus pickle (a swift-durus record, a class pickle holding no class).
    @Test func recordAndLimitErrors() throws {
        var limits = PickleReader.Limits()
        limits.maxMemo = 100
        var puts: [UInt8] = [0x80, 2, 0x4E]
        for index in 0 ..< 200 { puts += [0x72] + withUnsafeBytes(of: UInt32(index * 7919).littleEndian) { Array($0) } }
        var reader = PickleReader(limits: limits)
        #expect(throws: PickleError(offset: 503, reason: .limitExceeded("more than 100 memo entries"))) { try reader.load(puts + [0x2E]) }

        let classPickle: [UInt8] = [0x80, 2, 0x63] + Array("m\nC\n".utf8) + [0x71, 0, 0x2E]
        let zeros = Zlib.compressLikePython([UInt8](repeating: 0, count: 4 << 20)[...])!
        limits.maxInflatedBytes = 1 << 20
        #expect(throws: PickleError(offset: 10, reason: .badCompressedState, oid: 3)) {
            try PickleRecord(data: classPickle + zeros, oid: 3, reader: PickleReader(limits: limits))
        }
        let state = try PickleWriter.pickle(.list([.int(1), .int(2)]))
        #expect(throws: PickleError(offset: 2, reason: .stackUnderflow, oid: 4, inInflatedState: true)) {
            try PickleRecord(data: classPickle + Zlib.compressLikePython([0x80, 2, 0x61, 0x2E])!, oid: 4)
        }
        #expect(try PickleRecord(data: classPickle + state).state == .list([.int(1), .int(2)]))

        let swiftRecord: [UInt8] = [0xD5, 3, 0, 0, 4] + Array("Note".utf8) + [1, 2, 3]
        #expect(!PickleRecord.isDurusPickle(swiftRecord))
        #expect(PickleRecord.isDurusPickle(classPickle))
        #expect(throws: PickleError(offset: 0, reason: .notADurusRecord("the data does not start with a protocol 2 class pickle"), oid: 5)) {
            try PickleRecord(data: swiftRecord, oid: 5)
        }
        #expect(throws: PickleError(offset: 0, reason: .notADurusRecord("the class pickle holds no class"))) {
            try PickleRecord(data: [0x80, 2, 0x63] + Array("m\nC\n".utf8) + [0x85, 0x2E] + state)
        }
    }
}
