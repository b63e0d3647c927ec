/// An ordered map whose nodes are separate persistent objects, so a lookup
/// loads O(log n) records and a change rewrites O(log n) of them, like Durus's
/// `BTree`. For large data: a dictionary is one record, a BTree many small ones.
///
/// ```swift
/// let index = BTree<String, Account>()
/// index["alice"] = alice
/// index["bob"] = bob
/// for (name, account) in index.items(from: "a", to: "c") { print(name, account.balance) }
/// let first = index.min                      // ("alice", alice)
/// ```
///
/// A B-tree of minimum degree `order` (nodes hold up to
/// `2 * order - 1` entries; entries live in inner nodes too). Two connections
/// that change keys in different leaves do not conflict, unless a node
/// splits. `count` walks the tree (it loads every node): an O(1) count stored
/// in the tree would make every insert conflict with every other.
public final class BTree<Key: Comparable & Codable, Value: Codable>: Persistent<BTreeState<Key, Value>> {
    public typealias Node = BTreeNode<Key, Value>

    /// The default minimum degree: nodes of 127 to 255 entries. A commit
    /// that changes one key rewrites its whole leaf, and every key of a leaf
    /// is one unit of conflict between connections: 128 keeps that to 255
    /// entries.
    public static var defaultOrder: Int { 128 }

    /// An empty tree with nodes of `order - 1 ... 2 * order - 1` entries.
    public convenience init(order: Int = BTree.defaultOrder) {
        self.init()
        state.order = Swift.max(2, order)
    }

    /// A tree filled from `entries`, which must be sorted by key without
    /// repeats; built bottom-up, each node filled once.
    public convenience init<S: Sequence>(sorted entries: S, order: Int = BTree.defaultOrder) where S.Element == (Key, Value) {
        self.init(order: order)
        let all = Array(entries)
        state.root = Self.build(all[...], maxEntries: 2 * state.order - 1)
    }

    public required init() {
        super.init()
        PersistentTypes.register([Self.self, Node.self])
    }

    public required init(ghost: GhostMarker) { super.init(ghost: ghost) }

    public required init(from decoder: any Decoder) throws { try super.init(from: decoder) }

    @inlinable var maxEntries: Int { 2 * state.order - 1 }

    // MARK: Lookup

    /// The value under `key`; setting nil removes it.
    @inlinable public subscript(key: Key) -> Value? {
        get {
            var node = state.root
            while true {
                let (index, found) = node.search(key)
                if found { return node.values[index] }
                if node.isLeaf { return nil }
                node = node.children[index]
            }
        }
        set {
            if let newValue { insert(key, newValue) } else { remove(key) }
        }
    }

    /// Whether the tree is empty. Loads the nodes down its left edge.
    @inlinable public var isEmpty: Bool {
        var items = items()
        return items.next() == nil
    }

    /// The number of entries. Walks the whole tree: O(n), and loads every node.
    @inlinable public var count: Int { state.root.subtreeCount }

    /// The entry with the smallest key.
    @inlinable public var min: (key: Key, value: Value)? {
        var node = state.root
        while !node.isLeaf { node = node.children[0] }
        guard let key = node.keys.first else { return items().first(where: { _ in true }) }
        return (key, node.values[0])
    }

    /// The entry with the largest key.
    @inlinable public var max: (key: Key, value: Value)? { state.root.peekMax() }

    /// The entries with keys in `lower ..< upper` (either bound optional), in
    /// key order, loading each node only when the iteration reaches it.
    @inlinable public func items(from lower: Key? = nil, to upper: Key? = nil) -> Items {
        Items(root: state.root, lower: lower, upper: upper)
    }

    /// The entries whose keys fall in `range`, in order.
    @inlinable public subscript(range: Range<Key>) -> Items { items(from: range.lowerBound, to: range.upperBound) }

    // MARK: Changes

    /// Stores `value` under `key`, replacing any value there.
    @inlinable public func insert(_ key: Key, _ value: Value) {
        if state.root.keys.count == maxEntries {
            let old = state.root
            let top = Node()
            top.children = [old]
            top.split(child: 0, maxEntries: maxEntries)
            state.root = top
        }
        state.root.insertNonFull(key, value, maxEntries: maxEntries)
    }

    /// Removes the entry under `key` and returns its value.
    ///
    /// Nodes are not merged: a node emptied by removals stays in place and
    /// fills again with later inserts in its key range, and the tree never
    /// grows deeper through removals.
    @inlinable @discardableResult
    public func remove(_ key: Key) -> Value? {
        var node = state.root
        while true {
            let (index, found) = node.search(key)
            if found {
                let value = node.removeEntry(at: index)
                // A root left with no entry and one child hands over to it.
                while state.root.keys.isEmpty && state.root.children.count == 1 { state.root = state.root.children[0] }
                return value
            }
            if node.isLeaf { return nil }
            node = node.children[index]
        }
    }

    /// Builds a subtree from sorted entries, nodes filled to three quarters so
    /// the first inserts after a bulk load do not split every node.
    @inlinable static func build(_ entries: ArraySlice<(Key, Value)>, maxEntries: Int) -> Node {
        let fill = Swift.max(1, (3 * maxEntries) / 4)
        let node = Node()
        if entries.count <= fill {
            node.keys = entries.map(\.0)
            node.values = entries.map(\.1)
            return node
        }
        // c children need c - 1 separators; at most fill + 1 children, each a subtree.
        let children = Swift.min(fill + 1, (entries.count + 1 + fill) / (fill + 1))
        let perChild = (entries.count - (children - 1)) / children
        var extra = (entries.count - (children - 1)) % children
        var start = entries.startIndex
        var keys: [Key] = [], values: [Value] = [], nodes: [Node] = []
        for index in 0 ..< children {
            let size = perChild + (extra > 0 ? 1 : 0)
            if extra > 0 { extra -= 1 }
            nodes.append(build(entries[start ..< start + size], maxEntries: maxEntries))
            start += size
            if index < children - 1 {
                keys.append(entries[start].0)
                values.append(entries[start].1)
                start += 1
            }
        }
        node.keys = keys
        node.values = values
        node.children = nodes
        return node
    }

    /// An in-order walk over a range of the tree, loading nodes as it goes.
    public struct Items: Sequence, IteratorProtocol {
        /// A node on the walk's path, its arrays read once when the walk
        /// reaches it (each read of a node's state is an access to note).
        @usableFromInline struct Frame {
            @usableFromInline let keys: [Key]
            @usableFromInline let values: [Value]
            @usableFromInline let children: [Node]
            @usableFromInline var index: Int

            @inlinable init(_ node: Node, index: Int) {
                let state = node.state
                keys = state.keys
                values = state.values
                children = state.children
                self.index = index
            }
        }

        @usableFromInline var stack: [Frame] = []
        @usableFromInline let upper: Key?

        @inlinable init(root: Node, lower: Key?, upper: Key?) {
            self.upper = upper
            var node = root
            while true {
                let index = lower.map { node.search($0).index } ?? 0
                let frame = Frame(node, index: index)
                stack.append(frame)
                if frame.children.isEmpty { break }
                node = frame.children[index]
            }
        }

        @inlinable public mutating func next() -> (key: Key, value: Value)? {
            while !stack.isEmpty {
                let last = stack.count - 1
                let index = stack[last].index
                if index < stack[last].keys.count {
                    let key = stack[last].keys[index]
                    if let upper, key >= upper {
                        stack.removeAll()
                        return nil
                    }
                    let value = stack[last].values[index]
                    stack[last].index = index + 1
                    if !stack[last].children.isEmpty {
                        // Everything in the child after this entry comes next.
                        var frame = Frame(stack[last].children[index + 1], index: 0)
                        while true {
                            stack.append(frame)
                            if frame.children.isEmpty { break }
                            frame = Frame(frame.children[0], index: 0)
                        }
                    }
                    return (key, value)
                }
                stack.removeLast()
            }
            return nil
        }
    }
}

/// The stored state of a ``BTree``: its root node and its order.
public struct BTreeState<Key: Comparable & Codable, Value: Codable>: PersistentState {
    public var root = BTreeNode<Key, Value>()
    public var order = 128
    public init() {}
}

/// One node of a ``BTree``: its entries, and for an inner node its children.
public final class BTreeNode<Key: Comparable & Codable, Value: Codable>: Persistent<BTreeNodeState<Key, Value>> {
    public required init() {
        super.init()
    }

    public required init(ghost: GhostMarker) { super.init(ghost: ghost) }

    public required init(from decoder: any Decoder) throws { try super.init(from: decoder) }

    @inlinable var keys: [Key] { get { state.keys } set { state.keys = newValue } }
    @inlinable var values: [Value] { get { state.values } set { state.values = newValue } }
    @inlinable var children: [BTreeNode] { get { state.children } set { state.children = newValue } }
    @inlinable var isLeaf: Bool { state.children.isEmpty }

    /// The first position whose key is not less than `key`, and whether it equals it.
    @inlinable func search(_ key: Key) -> (index: Int, found: Bool) {
        let keys = state.keys
        var low = 0, high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return (low, low < keys.count && keys[low] == key)
    }

    @inlinable var subtreeCount: Int {
        state.keys.count + state.children.reduce(0) { $0 + $1.subtreeCount }
    }

    /// Splits the full child at `index` around its middle entry, which moves up here.
    @inlinable func split(child index: Int, maxEntries: Int) {
        let full = state.children[index]
        let middle = maxEntries / 2
        let right = BTreeNode()
        right.state.keys = Array(full.state.keys[(middle + 1)...])
        right.state.values = Array(full.state.values[(middle + 1)...])
        if !full.isLeaf { right.state.children = Array(full.state.children[(middle + 1)...]) }
        let upKey = full.state.keys[middle]
        let upValue = full.state.values[middle]
        full.state.keys.removeSubrange(middle...)
        full.state.values.removeSubrange(middle...)
        if !full.isLeaf { full.state.children.removeSubrange((middle + 1)...) }
        state.keys.insert(upKey, at: index)
        state.values.insert(upValue, at: index)
        state.children.insert(right, at: index + 1)
    }

    @inlinable func insertNonFull(_ key: Key, _ value: Value, maxEntries: Int) {
        var node = self
        while true {
            var (index, found) = node.search(key)
            if found {
                node.state.values[index] = value
                return
            }
            if node.isLeaf {
                node.state.keys.insert(key, at: index)
                node.state.values.insert(value, at: index)
                return
            }
            if node.state.children[index].state.keys.count == maxEntries {
                node.split(child: index, maxEntries: maxEntries)
                let separator = node.state.keys[index]
                if separator == key {
                    node.state.values[index] = value
                    return
                }
                if separator < key { index += 1 }
            }
            node = node.state.children[index]
        }
    }

    /// Removes the entry at `index`; in an inner node its predecessor takes its place.
    @inlinable func removeEntry(at index: Int) -> Value {
        let value = state.values[index]
        if isLeaf {
            state.keys.remove(at: index)
            state.values.remove(at: index)
        } else if let (key, predecessor) = state.children[index].popMax() {
            state.keys[index] = key
            state.values[index] = predecessor
        } else {
            // The whole left subtree is empty (emptied by removals): drop it with the entry.
            state.keys.remove(at: index)
            state.values.remove(at: index)
            state.children.remove(at: index)
        }
        return value
    }

    /// The largest entry of this subtree, passing over subtrees emptied by removals.
    @inlinable func peekMax() -> (key: Key, value: Value)? {
        if !isLeaf, let found = state.children[state.children.count - 1].peekMax() { return found }
        if let key = state.keys.last, let value = state.values.last { return (key, value) }
        return isLeaf || state.children.count != 1 ? nil : state.children[0].peekMax()
    }

    /// Removes and returns the largest entry of this subtree; nil when it holds none.
    @inlinable func popMax() -> (Key, Value)? {
        if isLeaf {
            guard let key = state.keys.popLast(), let value = state.values.popLast() else { return nil }
            return (key, value)
        }
        if let found = state.children[state.children.count - 1].popMax() { return found }
        // The last child's subtree is empty: this node's last entry is the largest.
        guard let key = state.keys.popLast(), let value = state.values.popLast() else {
            return state.children.count == 1 ? state.children[0].popMax() : nil
        }
        state.children.removeLast()
        return (key, value)
    }
}

/// The stored state of a ``BTreeNode``.
public struct BTreeNodeState<Key: Comparable & Codable, Value: Codable>: PersistentState {
    public var keys: [Key] = []
    public var values: [Value] = []
    public var children: [BTreeNode<Key, Value>] = []
    public init() {}
}
