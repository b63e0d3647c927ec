import Durus

/// Test models written by hand on the `Persistent` contract.
final class Account: Persistent<Account.State> {
    struct State: PersistentState {
        var owner = ""
        var balance = 0
        var history: [Int] = []
    }

    var owner: String { get { state.owner } set { state.owner = newValue } }
    var balance: Int { get { state.balance } set { state.balance = newValue } }
    var history: [Int] { get { state.history } set { state.history = newValue } }

    convenience init(owner: String, balance: Int = 0) {
        self.init()
        state.owner = owner
        state.balance = balance
    }
}

final class Bank: Persistent<Bank.State> {
    struct State: PersistentState {
        var name = "bank"
        var accounts: [String: Account] = [:]
        var ledger: [Account] = []
        var note: Note?
        /// Objects of any persistent type, through their common superclass.
        var objects: [PersistentObject] = []
    }

    var accounts: [String: Account] { get { state.accounts } set { state.accounts = newValue } }
    var ledger: [Account] { get { state.ledger } set { state.ledger = newValue } }
    var note: Note? { get { state.note } set { state.note = newValue } }
    var objects: [PersistentObject] { get { state.objects } set { state.objects = newValue } }
}

/// A nested Codable value holding a reference.
struct Note: Codable, Equatable {
    enum Kind: String, Codable { case memo, alert }
    var kind: Kind
    var text: String
    var about: Account?

    static func == (a: Note, b: Note) -> Bool { a.kind == b.kind && a.text == b.text && a.about === b.about }
}

/// A class with a transient (non-stored) cache, reset when ghosted.
final class Counter: Persistent<Counter.State> {
    struct State: PersistentState { var count = 0 }
    var count: Int { get { state.count } set { state.count = newValue } }
    /// Transient: never stored, dropped with the state.
    var lastViewed: String?

    override func clearState() {
        super.clearState()
        lastViewed = nil
    }
}

/// Every value type the codec claims.
final class Everything: Persistent<Everything.State> {
    struct State: PersistentState, Equatable {
        var int = 0, int8: Int8 = 0, int16: Int16 = 0, int32: Int32 = 0, int64: Int64 = 0
        var uint: UInt = 0, uint8: UInt8 = 0, uint16: UInt16 = 0, uint32: UInt32 = 0, uint64: UInt64 = 0
        var double = 0.0, float: Float = 0, bool = false, string = ""
        var data = [UInt8]()
        var optional: Int? = nil
        var array: [String] = []
        var set: Set<Int> = []
        var dictionary: [String: [Int]] = [:]
        var intKeys: [Int: String] = [:]
        var nested = Inner()
        var choice: Choice = .none
        var big: [Int] = []
    }

    struct Inner: Codable, Equatable { var a = 1; var b: [Double] = [] }
    enum Choice: Codable, Equatable { case none, some(Int, String) }
}

/// A state big enough to compress well.
final class Document: Persistent<Document.State> {
    struct State: PersistentState { var text = "" }
    var text: String { get { state.text } set { state.text = newValue } }
}

/// Raw bytes, for compression tests.
final class Blob: Persistent<Blob.State> {
    struct State: PersistentState { var bytes: [UInt8] = [] }
}

let testTypes: [PersistentObject.Type] = [Account.self, Bank.self, Counter.self, Everything.self, Document.self]
