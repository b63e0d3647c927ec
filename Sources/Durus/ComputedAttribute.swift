/// A persistent object without state that caches a value computed on demand,
/// as Durus's `ComputedAttribute`.
///
/// The cached value lives only in memory: it is dropped when the object
/// becomes a ghost (a cache shrink, or another connection's invalidation).
/// ``invalidate()`` marks the object changed, so the next commit tells every
/// other connection to drop its cached value at its next synchronization.
///
/// ```swift
/// final class Shop: Persistent<Shop.State> {
///     struct State: PersistentState {
///         var prices: [String: Int] = [:]
///         var total = ComputedAttribute<Int>()
///     }
///     var total: Int { state.total.get { state.prices.values.reduce(0, +) } }
///     func setPrice(_ price: Int, for item: String) {
///         state.prices[item] = price
///         state.total.invalidate()
///     }
/// }
/// ```
///
/// The function passed to ``get(_:)`` is not stored: every connection must
/// compute the same value from the same state.
public final class ComputedAttribute<Value>: PersistentObject {
    private var cached: Value?

    /// A new attribute with nothing cached.
    public override init() {
        super.init()
        PersistentTypes.register([Self.self])
    }

    public required init(ghost: GhostMarker) {
        super.init(ghost: ghost)
    }

    public required init(from decoder: any Decoder) throws {
        try super.init(from: decoder)
    }

    /// The cached value, or `compute()`'s, which is then cached.
    public func get(_ compute: () throws -> Value) rethrows -> Value {
        willRead()
        if let cached { return cached }
        let value = try compute()
        cached = value
        return value
    }

    /// Drops the cached value here, and, once committed, in every other connection.
    public func invalidate() {
        willWrite()
        cached = nil
    }

    /// Whether a value is cached now (for tests and diagnostics).
    public var hasCachedValue: Bool { cached != nil }

    public override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(NoState())
    }

    public override func decodeState(_ decoder: PersistentStateDecoder) throws {}

    public override func clearState() {
        super.clearState()
        cached = nil
    }

    private struct NoState: Codable {}
}
