import Durus
import DurusBerkeleyDB
import DurusClient
import DurusMacros
import DurusServer
import DurusTestSupport
import Foundation
import Synchronization
import Testing

// One object graph for Python and Swift: Python Durus 4.3's objects read and
// written as declared Swift types, through a swift-durus server.

/// Python's `shapes.Shape` (Tests/DurusServerTests/Python/shapes.py).
@Persistent(python: "shapes.Shape")
final class Shape: PersistentObject {
    var name: String = ""
    var size: Int = 0
    var ratio: Double = 0
    var flag: Bool = false
    var nothing: String? = nil
    var blob: [UInt8] = []
    var tags: [String] = []
    var point: [Int] = []
    var meta: [String: Int] = [:]
    var scores: [Int: String] = [:]
    var parent: Shape? = nil
}

/// The root Python writes: a `PersistentDict` whose entries are of three types.
@Persistent(python: "durus.persistent_dict.PersistentDict")
final class ShapeRoot: PersistentObject, PersistentRoot {
    struct Entries: Codable {
        var shapes: DurusPersistentDict<String, Shape>
        var list: DurusPersistentList<Shape>
        var labels: DurusPersistentSet<String>
        var index: DurusBTree<Int, String>
    }
    var data: Entries? = nil
}

/// Python's `accounts.Account` (Tests/DurusServerTests/Python/accounts.py), under a root
/// `PersistentDict` holding a `PersistentDict` of them under "accounts".
@Persistent(python: "accounts.Account")
final class SharedAccount: PersistentObject {
    var balance: Int = 0
}

/// The JSON view shape_graph.py prints, built the same way from Swift's objects.
struct GraphView: Codable, Equatable {
    struct ShapeView: Codable, Equatable {
        var name: String, size: Int, ratio: Double, flag: Bool, nothing: String?
        var blob: [Int], tags: [String], point: [Int], meta: [String: Int], scores: [String: String], parent: String?
    }
    struct IndexView: Codable, Equatable {
        var count: Int, keySum: Int, valueLength: Int
        var samples: [String: String?]
    }
    var shapes: [String: ShapeView]
    var order: [String]
    var labels: [String]
    var index: IndexView

    init(python output: String) throws {
        let line = try #require(output.split(separator: "\n").last)
        self = try JSONDecoder().decode(GraphView.self, from: Data(line.utf8))
    }

    init(_ root: ShapeRoot) throws {
        let entries = try #require(root.data)
        var shapes: [String: ShapeView] = [:]
        for name in entries.shapes.keys {
            let s = try #require(entries.shapes[name])
            shapes[name] = ShapeView(name: s.name, size: s.size, ratio: s.ratio, flag: s.flag, nothing: s.nothing,
                                     blob: s.blob.map(Int.init), tags: s.tags, point: s.point, meta: s.meta,
                                     scores: Dictionary(uniqueKeysWithValues: s.scores.map { (String($0.key), $0.value) }),
                                     parent: s.parent?.name)
        }
        self.shapes = shapes
        order = entries.list.contents.map(\.name)
        labels = entries.labels.contents.sorted()
        var (count, keySum, valueLength, previous) = (0, 0, 0, Int.min)
        var ordered = true
        entries.index.forEach { key, value in
            (count, keySum, valueLength) = (count + 1, keySum + key, valueLength + value.count)
            ordered = ordered && key > previous
            previous = key
        }
        #expect(ordered, "the index is out of order")
        let samples = [0, 1, 9999, 19999, 25000, 30001, -5]
        index = IndexView(count: count, keySum: keySum, valueLength: valueLength,
                          samples: Dictionary(uniqueKeysWithValues: samples.map { (String($0), entries.index[$0]) }))
    }
}

@Suite(.serialized)
struct PythonObjectGraphTests {
    /// Python writes a graph into a Durus file (every kind of attribute value,
    /// PersistentDict/List/Set, a 20,000-entry BTree, a shared reference, a
    /// cycle); it migrates into
    /// Berkeley DB; Swift reads it typed, equal to Python's own view; Swift
    /// changes and adds shapes through the server, and Python reads them as
    /// its own; Python changes them, and Swift reads that.
    @Test func pythonAndSwiftShareOneTypedGraph() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let written = try GraphView(python: PythonDurus.run("shape_graph.py", [directory.file("graph.durus"), "write"]))
        #expect(written.shapes.count == 3 && written.order == ["a", "b", "c", "a"])
        #expect(written.index.count == 20000)

        let storage = try openStore(directory.file("store"))
        try storage.migrate(from: FileStorage(path: directory.file("graph.durus"), options: .init(readOnly: true)))
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }

        let database = try Database(storage: try server.client(), root: ShapeRoot.self, types: [Shape.self])
        let connection = try database.open()
        let root = try connection.root(ShapeRoot.self)
        #expect(try GraphView(root) == written)
        // Shared references and the cycle are one object each, as in Python.
        let entries = try #require(root.data)
        let a = try #require(entries.shapes["a"]), b = try #require(entries.shapes["b"])
        #expect(entries.list[0] === a && entries.list[3] === a)
        #expect(a.parent === b && b.parent === a)

        // Swift changes a shape and adds one; Python reads them as its own.
        b.size = 20
        b.tags.append("from swift")
        b.meta["z"] = 26
        b.nothing = "set by swift"
        let e = Shape()
        (e.name, e.size, e.ratio, e.flag, e.blob, e.point, e.parent) = ("e", 5, 1.25, true, [9, 8], [5, 50], a)
        e.scores = [7: "seven"]
        entries.shapes["e"] = e
        entries.list.append(e)
        // Python's list is a PersistentList in Swift, with all of its API.
        entries.list.swapAt(1, 2)
        #expect(entries.list.map(\.name) == ["a", "c", "b", "a", "e"])
        entries.labels.insert("swift")
        // Enough new keys to split nodes and grow the tree Python made, and
        // a thousand removals, which borrow from and merge its nodes.
        for key in 20000 ..< 26000 { entries.index.setValue("s\(key)", forKey: key) }
        entries.index.setValue("replaced", forKey: 1)
        for key in stride(from: 0, to: 2000, by: 2) { #expect(entries.index.removeValue(forKey: key) == "v\(key)") }
        #expect(entries.index.removeValue(forKey: 0) == nil)
        try connection.commit()
        let afterSwift = try GraphView(root)
        let pythonSees = try GraphView(python: PythonDurus.run("shape_graph.py", [server.pythonAddress, "show"]))
        #expect(pythonSees == afterSwift)
        #expect(pythonSees.shapes["e"]?.parent == "a" && pythonSees.labels.contains("swift"))
        #expect(pythonSees.index.count == 25000 && pythonSees.index.samples["25000"] == "s25000"
            && pythonSees.index.samples["1"] == "replaced" && pythonSees.index.samples["0"] == .some(nil))

        // Python changes them; Swift sees it at its next transaction.
        let pythonChanged = try GraphView(python: PythonDurus.run("shape_graph.py", [server.pythonAddress, "change"]))
        connection.abort()
        #expect(try GraphView(try connection.root(ShapeRoot.self)) == pythonChanged)
        #expect(pythonChanged.shapes["a"]?.tags.last == "from python" && pythonChanged.shapes["d"]?.parent == "b")
        #expect(pythonChanged.index.count == 25005 && pythonChanged.index.samples["-5"] == "minus five")
        #expect(try storage.verify().isClean)
    }

    /// The article's sample moves 10 between two accounts Python made; Python sees it.
    @Test func theArticleSampleRunsAsWritten() throws {
        let storage = MemoryStorage()
        let server = try startServer(storage: storage)
        defer { server.stop() }
        try PythonDurus.run("bank.py", [server.pythonAddress, "setup", "2", "100"])
        try ArticleSample.run(server.address)
        let output = try PythonDurus.run("bank.py", [server.pythonAddress, "balances"])
        #expect(output.contains("a0=90 a1=110"), "\(output)")
    }

    /// Python and Swift clients move money between the same `Account` objects
    /// through one server at once, Swift through typed objects and
    /// `transaction(retries:)`: no transfer is lost or doubled, the total holds.
    @Test func pythonAndSwiftTransferBetweenTheSameAccounts() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"), durability: .writeNoSync)
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }
        try PythonDurus.run("bank.py", [server.pythonAddress, "setup", "6", "1000"])
        let seconds = 3.0
        let pythons = try (1 ... 2).map { seed in try PythonDurus.start("bank.py", [server.pythonAddress, "transfer", "\(seconds)", "\(seed)"]) }
        let transfers = Atomic<Int>(0), failures = Mutex<[String]>([])
        let deadline = ContinuousClock.now + .seconds(seconds)
        let workers = try (0 ..< 2).map { worker in
            let database = try Database(storage: try server.client(), root: BankRoot.self, types: [SharedAccount.self])
            return Thread {
                var random = SystemRandomNumberGenerator()
                while ContinuousClock.now < deadline {
                    do {
                        try database.transaction(retries: 50) { connection in
                            let accounts = try #require(try connection.root(BankRoot.self).data["accounts"])
                            let names = accounts.keys.sorted()
                            let from = names.randomElement(using: &random)!, to = names.randomElement(using: &random)!
                            let amount = Int.random(in: 1 ... 20, using: &random)
                            let source = accounts[from]!, target = accounts[to]!   // reads: the dict stays unchanged
                            source.balance -= amount
                            target.balance += amount
                        }
                        transfers.add(1, ordering: .relaxed)
                    } catch {
                        failures.withLock { $0.append("worker \(worker): \(error)") }
                        return
                    }
                }
            }
        }
        workers.forEach { $0.start() }
        var pythonTransfers = 0
        for (process, out, err) in pythons {
            let output = try PythonDurus.finish(process, out, err, "bank.py transfer")
            #expect(!output.contains("AUDIT FAILED"), "\(output)")
            pythonTransfers += output.split(separator: " ").first { $0.hasPrefix("transfers=") }.flatMap { Int($0.dropFirst(10)) } ?? 0
        }
        while workers.contains(where: { !$0.isFinished }) { usleep(10_000) }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(transfers.load(ordering: .relaxed) > 0 && pythonTransfers > 0)
        #expect(try PythonDurus.run("bank.py", [server.pythonAddress, "audit"]).contains("total=6000"))
        let database = try Database(storage: try server.client(), root: BankRoot.self, types: [SharedAccount.self])
        let total = try database.transaction { connection in
            let accounts = try #require(try connection.root(BankRoot.self).data["accounts"])
            return accounts.contents.values.reduce(0) { $0 + $1.balance }
        }
        #expect(total == 6000)
        print("mixed bank: \(transfers.load(ordering: .relaxed)) Swift and \(pythonTransfers) Python transfers, total \(total)")
    }
}

/// The sample of the DocC article "Sharing Objects with Python", as written there.
enum ArticleSample {
    @Persistent(python: "accounts.Account")
    final class Account: PersistentObject {
        var balance: Int = 0
    }

    @Persistent(python: "durus.persistent_dict.PersistentDict")
    final class BankRoot: PersistentObject, PersistentRoot {
        var data: [String: DurusPersistentDict<String, Account>] = [:]
    }

    static func run(_ address: ServerAddress) throws {
        let database = try Database(storage: ClientStorage(address: address),
                                    root: BankRoot.self, types: [Account.self])
        try database.transaction { connection in
            let accounts = try connection.root(BankRoot.self).data["accounts"]!
            accounts["a0"]!.balance -= 10
            accounts["a1"]!.balance += 10
        }
    }
}

/// The root bank.py writes: a `PersistentDict` holding the accounts' `PersistentDict` under "accounts".
@Persistent(python: "durus.persistent_dict.PersistentDict")
final class BankRoot: PersistentObject, PersistentRoot {
    var data: [String: DurusPersistentDict<String, SharedAccount>] = [:]
}
