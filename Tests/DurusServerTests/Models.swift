import Durus

/// Swift models for the server tests, written by hand on the `Persistent` contract.
final class Ledger: Persistent<Ledger.State> {
    struct State: PersistentState {
        var entries: [Entry] = []
    }

    var entries: [Entry] { get { state.entries } set { state.entries = newValue } }
}

final class Entry: Persistent<Entry.State> {
    struct State: PersistentState {
        var label = ""
        var amount = 0
    }

    var label: String { get { state.label } set { state.label = newValue } }
    var amount: Int { get { state.amount } set { state.amount = newValue } }

    convenience init(label: String, amount: Int) {
        self.init()
        state.label = label
        state.amount = amount
    }
}
