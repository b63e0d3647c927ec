@testable import Durus
import DurusTestSupport
import Foundation

/// What the pickle tests share: Python Durus 4.3 running the scripts in
/// Python/ beside this file, and the tagged view of values both sides print
/// (described in Python/pickle_fixtures.py).
enum PickleTestKit {
    static let python = PythonScripts(
        folder: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Python").path)

    /// A value as the scripts print it: tagged arrays of strings, `null` for
    /// an object's missing state.
    indirect enum Tree: Decodable, Equatable, CustomStringConvertible {
        case null
        case string(String)
        case array([Tree])

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .null }
            else if let text = try? container.decode(String.self) { self = .string(text) }
            else { self = .array(try container.decode([Tree].self)) }
        }

        init(_ tag: String, _ items: [Tree]) { self = .array([.string(tag)] + items) }
        init(_ tag: String, _ text: String) { self = .array([.string(tag), .string(text)]) }

        /// Equal, with sets' elements in any order and strings compared by
        /// Unicode scalars.
        func same(_ other: Tree) -> Bool {
            switch (self, other) {
            case (.null, .null): return true
            case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
            case let (.array(a), .array(b)):
                guard a.count == b.count else { return false }
                if case .string(let tag) = a.first, tag == "set" || tag == "frozenset", a.first == b.first {
                    var rest = Array(b.dropFirst())
                    for item in a.dropFirst() {
                        guard let match = rest.firstIndex(where: { item.same($0) }) else { return false }
                        rest.remove(at: match)
                    }
                    return true
                }
                return zip(a, b).allSatisfy { $0.same($1) }
            default: return false
            }
        }

        var description: String {
            switch self {
            case .null: "null"
            case .string(let text): "\"\(text)\""
            case .array(let items): "[" + items.map(\.description).joined(separator: ", ") + "]"
            }
        }
    }

    /// The view of a Swift value, as pickle_fixtures.view prints Python's.
    static func view(_ value: PickleValue) -> Tree {
        func entries(_ entries: [PickleValue.Entry]) -> [Tree] { entries.map { .array([view($0.key), view($0.value)]) } }
        switch value {
        case .null: return .array([.string("none")])
        case .bool(let flag): return Tree("bool", flag ? "true" : "false")
        case .int(let int): return Tree("int", String(int))
        case .bigInt(let big): return Tree("bigint", hex(big.littleEndianBytes))
        case .double(let double): return Tree("float", hex(withUnsafeBytes(of: double.bitPattern.bigEndian) { Array($0) }))
        case .bytes(let bytes): return Tree("bytes", hex(bytes))
        case .string(let text): return Tree("str", text)
        case .tuple(let items): return Tree("tuple", items.map(view))
        case .list(let items): return Tree("list", items.map(view))
        case .set(let items): return Tree("set", items.map(view))
        case .frozenset(let items): return Tree("frozenset", items.map(view))
        case .dict(let items): return Tree("dict", entries(items))
        case .global(let global): return Tree("global", [.string(global.module), .string(global.name)])
        case .persistent(let reference):
            return Tree("ref", [.string(String(reference.oid)), .string(reference.classGlobal?.module ?? "?"),
                                .string(reference.classGlobal?.name ?? "?")])
        case .object(let object):
            guard case .global(let callable) = object.callable else { return Tree("object", [view(object.callable)]) }
            let tag = switch object.construction {
            case .reduce: "reduce"
            case .newObject: "newobj"
            case .instantiate: "inst"
            }
            return Tree(tag, [.string(callable.module), .string(callable.name), .array(object.arguments.map(view)),
                              object.state.map(view) ?? .null, .array(object.listItems.map(view)),
                              .array(entries(object.dictItems))])
        }
    }

    /// `value` with `change` applied to every part, innermost first.
    static func transform(_ value: PickleValue, _ change: (PickleValue) -> PickleValue) -> PickleValue {
        func each(_ items: [PickleValue]) -> [PickleValue] { items.map { transform($0, change) } }
        func entries(_ entries: [PickleValue.Entry]) -> [PickleValue.Entry] {
            entries.map { .init(transform($0.key, change), transform($0.value, change)) }
        }
        switch value {
        case .tuple(let items): return change(.tuple(each(items)))
        case .list(let items): return change(.list(each(items)))
        case .set(let items): return change(.set(each(items)))
        case .frozenset(let items): return change(.frozenset(each(items)))
        case .dict(let items): return change(.dict(entries(items)))
        case .object(var object):
            object.arguments = each(object.arguments)
            object.state = object.state.map { transform($0, change) }
            object.listItems = each(object.listItems)
            object.dictItems = entries(object.dictItems)
            return change(.object(object))
        default: return change(value)
        }
    }

    /// Where two records' data first differ, uncompressed.
    static func firstDifference(_ one: [UInt8], _ other: [UInt8]) -> String {
        func uncompressed(_ data: [UInt8]) -> [UInt8] {
            var reader = PickleReader()
            guard let end = try? reader.load(data).end, data.count > end, data[end] == 0x78,
                  let state = Zlib.decompress(data[end...]) else { return data }
            return Array(data[..<end]) + state
        }
        let (a, b) = (uncompressed(one), uncompressed(other))
        let offset = (0 ..< min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        return "uncompressed, first difference at \(offset): \(hex(a[offset...].prefix(40))) vs \(hex(b[offset...].prefix(40)))"
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map {
            UInt8(String(decoding: digits[$0 ..< $0 + 2], as: UTF8.self), radix: 16)!
        }
    }

    /// Runs a script command and decodes the JSON it prints; `input`, when
    /// given, is written to a temporary file whose path is the last argument.
    static func run<Output: Decodable>(_ arguments: [String], input: (some Encodable)? = nil as [String]?) throws -> Output {
        var arguments = arguments
        var file: URL?
        if let input {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("pickle-\(UUID()).json")
            try JSONEncoder().encode(input).write(to: url)
            arguments.append(url.path)
            file = url
        }
        defer { file.map { try? FileManager.default.removeItem(at: $0) } }
        return try JSONDecoder().decode(Output.self, from: python.run("durus_pickles.py", arguments))
    }

    /// What `durus_pickles.py make` prints: the records Durus wrote.
    struct Made: Decodable, Sendable {
        struct Record: Decodable, Sendable {
            var oid: UInt64
            var data: String
            var refs: [UInt64]
            var klass: [String]
            var state: Tree
        }
        var records: [Record]
        /// Records Swift cannot write back byte for byte (see the script).
        var divergent: [UInt64]
    }

    /// What `durus_pickles.py load` prints for each object Durus loaded.
    struct Loaded: Decodable {
        struct Object: Decodable {
            var klass: [String]
            var state: Tree
            var resaved: String
            var refs: [UInt64]
        }
        var objects: [String: Object]
    }

    /// What `durus_pickles.py samples` prints: a value pickled at protocols 0 to 4.
    struct Sample: Decodable, Sendable {
        var name: String
        var view: Tree
        var p0: String, p1: String, p2: String, p3: String, p4: String
        var protocols: [String] { [p0, p1, p2, p3, p4] }
    }

    /// What `durus_pickles.py pickles` prints for each pickle.
    struct Unpickled: Decodable {
        var view: Tree?
        var error: String?
    }

    struct Failure: Error, Sendable, CustomStringConvertible {
        let description: String
    }

    /// The store Python builds once per test run.
    static let made: Result<Made, Failure> = Result { () throws(Failure) in
        do { return try run(["make"]) } catch { throw Failure(description: "\(error)") }
    }

    /// The sample pickles Python makes once per test run.
    static let samples: Result<[Sample], Failure> = Result { () throws(Failure) in
        do { return try run(["samples"]) } catch { throw Failure(description: "\(error)") }
    }

    /// Stores `records` in a new Python FileStorage and loads each object
    /// through a Durus Connection.
    static func loadInDurus(_ records: [Record]) throws -> [OID: Loaded.Object] {
        let input = Dictionary(uniqueKeysWithValues: records.map { (String($0.oid.rawValue), hex($0.bytes)) })
        let loaded: Loaded = try run(["load"], input: input)
        return Dictionary(uniqueKeysWithValues: loaded.objects.map { (OID(UInt64($0.key)!), $0.value) })
    }
}
