/// Python Durus 4.3's `durus.btree.BTree`, in its own node layout: a sorted
/// mapping a Python program and a Swift program share. Its records are
/// Durus pickles (the tree `{'root': node}`, each node `{'items': [(key,
/// value), …], 'nodes': None or [node, …]}` of the class `BNode16` or
/// another degree's), which Python loads as its own `BTree`; one Python
/// wrote loads as this type where a reference declares it, keeping each
/// node's degree.
///
/// Lookups and insertions follow Durus's own algorithm, so a tree either
/// language changes stays one the other reads and changes.
///
/// ```swift
/// let index = DurusBTree<Int, String>()      // nodes of degree 16, as Python's default
/// index.setValue("seven", forKey: 7)
/// index[7]                                   // "seven"
/// index.forEach { key, value in print(key, value) }   // in key order
/// ```
public final class DurusBTree<Key: Comparable & Codable, Value: Codable>: PersistentObject, PersistentRoot {
    public override class var pythonClass: String? { "durus.btree.BTree" }

    /// The root node; nil in a ghost.
    final var root: DurusBTreeNode<Key, Value>?

    /// An empty tree whose nodes have Durus's default degree, 16 (`BNode16`).
    public override init() {
        root = DurusBTreeNode(degree: 16)
        super.init()
        PersistentTypes.registerOnce(Self.self)
        PersistentTypes.registerOnce(DurusBTreeNode<Key, Value>.self)
    }

    public required init(ghost: GhostMarker) {
        super.init(ghost: ghost)
        PersistentTypes.registerOnce(Self.self)
        PersistentTypes.registerOnce(DurusBTreeNode<Key, Value>.self)
    }

    public required init(from decoder: any Decoder) throws {
        try super.init(from: decoder)
    }

    /// The value stored under `key`, or nil.
    public subscript(key: Key) -> Value? {
        willRead()
        return root?.search(key)
    }

    /// Stores `value` under `key`, as Python's `tree[key] = value` does.
    public func setValue(_ value: Value, forKey key: Key) {
        willRead()
        guard let root else { return }
        let item = DurusBTreeItem(key: key, value: value)
        if root.isFull {
            // The root splits: a new root above it, one level deeper.
            let top = DurusBTreeNode<Key, Value>(degree: root.degree)
            top.nodes = [root]
            top.splitChild(0, root)
            top.insert(item)
            willWrite()
            self.root = top
        } else {
            root.insert(item)
        }
    }

    /// An empty tree whose nodes have degree `nodeDegree` (Durus's
    /// `BTree(BNode4)` and the like: 2, 4, 8, …, 512), or nil for another degree.
    public convenience init?(nodeDegree: Int) {
        guard DurusBTreeNode<Key, Value>.degrees.contains(nodeDegree) else { return nil }
        self.init()
        root = DurusBTreeNode(degree: nodeDegree)
    }

    /// Removes `key`, as Python's `del tree[key]` does; the value it had, or
    /// nil when the tree has no such key (where Python raises `KeyError`).
    @discardableResult public func removeValue(forKey key: Key) -> Value? {
        willRead()
        guard let root, let value = root.search(key) else { return nil }
        root.delete(key)
        return value
    }

    /// Calls `body` with every key and value, in key order.
    public func forEach(_ body: (Key, Value) throws -> Void) rethrows {
        willRead()
        try root?.forEach(body)
    }

    /// The number of entries (counted by a walk of the whole tree).
    public var count: Int {
        var count = 0
        forEach { _, _ in count += 1 }
        return count
    }

    public override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(DurusBTreeSlot(root: root))
    }

    public override func decodeState(_ decoder: PersistentStateDecoder) throws {
        root = try decoder.decode(DurusBTreeSlot<Key, Value>.self).root
    }

    public override func clearState() {
        super.clearState()
        root = nil
    }
}

/// A node of a ``DurusBTree``: Durus's `BNode` of one degree (`BNode4` …
/// `BNode512`, or `BNode` for degree 2), holding up to `2 × degree − 1` items.
public final class DurusBTreeNode<Key: Comparable & Codable, Value: Codable>: PersistentObject {
    public override class var pythonClass: String? { "durus.btree.BNode16" }

    /// The node's minimum degree (Durus's `minimum_degree`), from its Python class.
    final var degree: Int
    final var items: [DurusBTreeItem<Key, Value>] = []
    /// The children, one more than the items; nil in a leaf.
    final var nodes: [DurusBTreeNode]?

    static var degrees: [Int] { [2, 4, 8, 16, 32, 64, 128, 256, 512] }

    init(degree: Int) {
        self.degree = degree
        super.init()
    }

    public required init(ghost: GhostMarker) {
        degree = 16
        super.init(ghost: ghost)
    }

    public required init(from decoder: any Decoder) throws {
        degree = 16
        try super.init(from: decoder)
    }

    override var pythonClassName: String? { degree == 2 ? "durus.btree.BNode" : "durus.btree.BNode\(degree)" }

    override class func mapsPythonClass(_ name: ArraySlice<UInt8>) -> Bool { degree(of: name) != nil }

    override func noteLoadedPythonClass(_ name: ArraySlice<UInt8>) {
        if let degree = Self.degree(of: name) { self.degree = degree }
    }

    /// The degree of the Durus node class `name` (UTF-8), or nil for any other class.
    static func degree(of name: ArraySlice<UInt8>) -> Int? {
        let prefix = "durus.btree.BNode".utf8
        guard name.starts(with: prefix) else { return nil }
        let digits = name.dropFirst(prefix.count)
        if digits.isEmpty { return 2 }
        guard let degree = Int(String(decoding: digits, as: UTF8.self)), degrees.contains(degree) else { return nil }
        return degree
    }

    var isFull: Bool {
        willRead()
        return items.count == 2 * degree - 1
    }

    /// Where `key` is or would go among the items (Durus's `get_position`).
    private func position(_ key: Key) -> Int {
        var low = 0, high = items.count
        while low < high {
            let middle = (low + high) / 2
            if items[middle].key < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    func search(_ key: Key) -> Value? {
        willRead()
        let position = position(key)
        if position < items.count, items[position].key == key { return items[position].value }
        return nodes?[position].search(key)
    }

    /// Durus's `insert_item`: the node is not full.
    func insert(_ item: DurusBTreeItem<Key, Value>) {
        willRead()
        var position = position(item.key)
        if position < items.count, items[position].key == item.key {
            willWrite()
            items[position] = item
        } else if nodes == nil {
            willWrite()
            items.insert(item, at: position)
        } else if let child = nodes?[position] {
            guard child.isFull else { return child.insert(item) }
            splitChild(position, child)
            if item.key == items[position].key {
                items[position] = item
            } else {
                if item.key > items[position].key { position += 1 }
                nodes?[position].insert(item)
            }
        }
    }

    /// Durus's `split_child`: moves the upper half of the full `child` (the
    /// child at `position`) into a new sibling and its middle item up here.
    func splitChild(_ position: Int, _ child: DurusBTreeNode) {
        willWrite()
        child.willWrite()
        let bigger = DurusBTreeNode(degree: degree)
        let middle = degree - 1
        let splitting = child.items[middle]
        bigger.items = Array(child.items[(middle + 1)...])
        child.items = Array(child.items[..<middle])
        if let childNodes = child.nodes {
            bigger.nodes = Array(childNodes[(middle + 1)...])
            child.nodes = Array(childNodes[...middle])
        }
        items.insert(splitting, at: position)
        nodes?.insert(bigger, at: position + 1)
    }

    /// Whether a child may lose an item (Durus's `is_big`).
    var isBig: Bool {
        willRead()
        return items.count >= degree
    }

    func minItem() -> DurusBTreeItem<Key, Value> {
        willRead()
        return nodes?.first?.minItem() ?? items[0]
    }

    func maxItem() -> DurusBTreeItem<Key, Value> {
        willRead()
        return nodes?.last?.maxItem() ?? items[items.count - 1]
    }

    /// Merges children `p` and `p + 1`, around this node's item `p`, into
    /// `survivor`, one of the two (already marked changed); the other goes.
    private func mergeChildren(at p: Int, into survivor: DurusBTreeNode<Key, Value>) {
        let left = nodes![p], right = nodes![p + 1]
        (survivor === left ? right : left).willRead()
        survivor.items = left.items + [items[p]] + right.items
        if survivor.nodes != nil { survivor.nodes = (left.nodes ?? []) + (right.nodes ?? []) }
        items.remove(at: p)
        nodes!.remove(at: survivor === left ? p + 1 : p)
    }

    /// Durus's `BNode.delete` (Cormen, Leiserson and Rivest, 19.3, with
    /// Cormen's own case 2c; see below): removes
    /// `key`, which the subtree holds, keeping every node on the way down
    /// able to lose an item (borrowing from or merging with a sibling).
    func delete(_ key: Key) {
        willRead()
        let p = position(key)
        let matches = p < items.count && items[p].key == key
        guard let children = nodes else {
            if matches {
                willWrite()
                items.remove(at: p)
            }
            return
        }
        willWrite()
        let node = children[p]
        let lower = p > 0 ? children[p - 1] : nil
        let upper = p < children.count - 1 ? children[p + 1] : nil
        if matches {
            if node.isBig {
                let extreme = node.maxItem()
                node.delete(extreme.key)
                items[p] = extreme
            } else if let upper, upper.isBig {
                let extreme = upper.minItem()
                upper.delete(extreme.key)
                items[p] = extreme
            } else if upper != nil {
                // Both children at their minimum: merged around the key, which
                // is then deleted from the merged child (Cormen's case 2c).
                // Durus moves the upper child's least item up instead, which
                // can empty that child and leave leaves at two depths (Python
                // Durus's own BTree(BNode) breaks so under random removals).
                node.willWrite()
                mergeChildren(at: p, into: node)
                node.delete(key)
            }
        } else {
            if !node.isBig {
                node.willWrite()
                if let lower, lower.isBig {
                    lower.willWrite()
                    node.items.insert(items[p - 1], at: 0)
                    items[p - 1] = lower.items.removeLast()
                    if node.nodes != nil, let moved = lower.nodes?.removeLast() { node.nodes?.insert(moved, at: 0) }
                } else if let upper, upper.isBig {
                    upper.willWrite()
                    node.items.append(items[p])
                    items[p] = upper.items.removeFirst()
                    if node.nodes != nil, let moved = upper.nodes?.removeFirst() { node.nodes?.append(moved) }
                } else if lower != nil {
                    mergeChildren(at: p - 1, into: node)
                } else if upper != nil {
                    mergeChildren(at: p, into: node)
                }
            }
            node.delete(key)
        }
        if items.isEmpty, let first = nodes?.first {
            // The root lost its last item: its one child takes its place.
            first.willRead()
            items = first.items
            nodes = first.nodes
        }
    }

    func forEach(_ body: (Key, Value) throws -> Void) rethrows {
        willRead()
        guard let nodes else {
            for item in items { try body(item.key, item.value) }
            return
        }
        for (index, item) in items.enumerated() {
            try nodes[index].forEach(body)
            try body(item.key, item.value)
        }
        try nodes.last?.forEach(body)
    }

    public override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(DurusBTreeNodeSlot(items: items, nodes: nodes))
    }

    public override func decodeState(_ decoder: PersistentStateDecoder) throws {
        let slot = try decoder.decode(DurusBTreeNodeSlot<Key, Value>.self)
        items = slot.items
        nodes = slot.nodes
    }

    public override func clearState() {
        super.clearState()
        items = []
        nodes = nil
    }
}

/// A key and its value: a 2-tuple in Durus's nodes.
struct DurusBTreeItem<Key: Codable, Value: Codable>: Codable, PythonTupleEncodable {
    var key: Key
    var value: Value

    init(key: Key, value: Value) {
        self.key = key
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        key = try container.decode(Key.self)
        value = try container.decode(Value.self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(key)
        try container.encode(value)
    }

    func pickledItems(_ encoder: PickleStateEncoder) throws -> [PickleValue] {
        [try encoder.pickle(key), try encoder.pickle(value)]
    }
}

/// The state of Durus's `BTree`: one slot, `root`.
struct DurusBTreeSlot<Key: Comparable & Codable, Value: Codable>: PersistentState {
    var root: DurusBTreeNode<Key, Value>?
}

/// The state of Durus's `BNode`: its `items` and its `nodes` (None in a leaf).
struct DurusBTreeNodeSlot<Key: Comparable & Codable, Value: Codable>: PersistentState {
    var items: [DurusBTreeItem<Key, Value>] = []
    var nodes: [DurusBTreeNode<Key, Value>]?
}
