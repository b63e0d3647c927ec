/// A value as a Python pickle holds it: what Python Durus stores in a
/// record's state, with nothing it writes left out.
///
/// Python's types map one to one: `None` (``null``, as `none` would be
/// taken for `Optional.none`), `bool`, `int`, `float`, `bytes`, `str`,
/// `tuple`, `list`, `dict`, `set`, `frozenset`. A class or function
/// named in the pickle is a ``Global``; a reference to another persistent
/// object is a ``Reference`` (its OID and class); any other object, built by
/// `REDUCE`, `NEWOBJ` or `OBJ` and perhaps `BUILD`, is an ``Object`` that
/// keeps how it was built. Python 3 pickles `bytes` at protocol 2 as
/// `_codecs.encode(text, 'latin1')` and sets as `set([…])`; those come back as
/// ``bytes(_:)``, ``set(_:)`` and ``frozenset(_:)``.
///
/// A value is a tree: an object the pickle shares between two places (the
/// memo) appears twice, equal. Dictionaries keep their pickled order, and so
/// do sets.
///
/// Equality is equality of what is pickled, not Python's `==`: strings
/// compare by Unicode scalars (not by Swift's canonical equivalence, so
/// `"é"` and `"e\u{301}"` differ, as in Python), doubles by bit pattern (a
/// NaN equals itself, `0.0` differs from `-0.0`), sets and dictionaries in
/// order. An integer that fits `Int64` is always ``int(_:)``, never
/// ``bigInt(_:)``.
///
/// ```swift
/// let state: PickleValue = .dict([.init(.string("name"), .string("Ada")),
///                                 .init(.string("age"), .int(36))])
/// state["name"]          // .string("Ada")
/// ```
public enum PickleValue: Sendable {
    /// Python's `None`.
    case null
    case bool(Bool)
    /// An integer that fits in 64 bits.
    case int(Int64)
    /// An integer that does not fit in 64 bits.
    case bigInt(BigInt)
    case double(Double)
    case bytes([UInt8])
    case string(String)
    case tuple([PickleValue])
    case list([PickleValue])
    /// Key/value pairs in pickled order; keys may be any value.
    case dict([Entry])
    /// Elements in pickled order.
    case set([PickleValue])
    /// Elements in pickled order.
    case frozenset([PickleValue])
    /// A class or function, by module and name (`GLOBAL`).
    case global(Global)
    /// Another persistent object, by OID (a Durus persistent id).
    case persistent(Reference)
    /// Any other object, as the pickle builds it.
    indirect case object(Object)

    /// A key/value pair of a ``PickleValue/dict(_:)``.
    public struct Entry: Hashable, Sendable {
        public var key: PickleValue
        public var value: PickleValue
        public init(_ key: PickleValue, _ value: PickleValue) {
            self.key = key
            self.value = value
        }
    }

    /// A class or function as a pickle names it: module and qualified name,
    /// exactly as written (Python 3 writes builtins as `__builtin__` at protocol 2).
    public struct Global: Hashable, Sendable, CustomStringConvertible {
        public var module: String
        public var name: String
        public init(_ module: String, _ name: String) {
            self.module = module
            self.name = name
        }
        public var description: String { module + "." + name }
    }

    /// A reference to a persistent object as Durus pickles it: the persistent
    /// id `(oid, class)`, the OID being 8 big-endian bytes.
    public struct Reference: Hashable, Sendable {
        /// The referenced object's OID.
        public var oid: UInt64
        /// The referenced object's class; `nil` when the persistent id was
        /// the bare OID, which Durus never writes.
        public var classGlobal: Global?
        public init(oid: UInt64, classGlobal: Global?) {
            self.oid = oid
            self.classGlobal = classGlobal
        }
    }

    /// An object that is neither a builtin value nor persistent, as the pickle
    /// builds it: Python's reduce tuple (callable, arguments, state, list
    /// items, dict items), plus which opcode built it.
    public struct Object: Hashable, Sendable {
        /// How the object is made from ``callable`` and ``arguments``.
        public enum Construction: Hashable, Sendable {
            /// `REDUCE`: `callable(*arguments)`.
            case reduce
            /// `NEWOBJ`: `callable.__new__(callable, *arguments)` (protocol 2).
            case newObject
            /// `OBJ` or `INST`: an instance of `callable`, as Python 2 wrote
            /// old-style instances.
            case instantiate
        }

        /// The class or function; almost always a ``PickleValue/global(_:)``.
        public var callable: PickleValue
        public var arguments: [PickleValue]
        public var construction: Construction
        /// What `BUILD` gave the object (`__setstate__`), if anything.
        public var state: PickleValue?
        /// Items appended after construction (`APPEND`, as for a list subclass).
        public var listItems: [PickleValue]
        /// Items set after construction (`SETITEM`, as for an `OrderedDict`).
        public var dictItems: [Entry]

        public init(callable: PickleValue, arguments: [PickleValue] = [], construction: Construction = .reduce,
                    state: PickleValue? = nil, listItems: [PickleValue] = [], dictItems: [Entry] = []) {
            self.callable = callable
            self.arguments = arguments
            self.construction = construction
            self.state = state
            self.listItems = listItems
            self.dictItems = dictItems
        }
    }

    /// The value of `key` in a ``dict(_:)`` (the last pair with that key, as
    /// Python keeps); `nil` for a missing key or a value that is not a dict.
    public subscript(key: PickleValue) -> PickleValue? {
        guard case .dict(let entries) = self else { return nil }
        return entries.last { $0.key == key }?.value
    }

    /// The value of the string key `key` in a ``dict(_:)``.
    public subscript(key: String) -> PickleValue? { self[.string(key)] }

    /// Whether the value holds nothing mutable (no list, dict, set or object):
    /// what a writer may share when it meets an equal value twice.
    var isImmutable: Bool {
        switch self {
        case .list, .dict, .set, .object: false
        case .tuple(let items), .frozenset(let items): items.allSatisfy(\.isImmutable)
        default: true
        }
    }
}

extension PickleValue: Hashable {
    public static func == (lhs: PickleValue, rhs: PickleValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case let (.bool(a), .bool(b)): a == b
        case let (.int(a), .int(b)): a == b
        case let (.bigInt(a), .bigInt(b)): a == b
        case let (.double(a), .double(b)): a.bitPattern == b.bitPattern
        case let (.bytes(a), .bytes(b)): a == b
        // Equal scalars are equal UTF-8, which compares faster.
        case let (.string(a), .string(b)): a.utf8.elementsEqual(b.utf8)
        case let (.tuple(a), .tuple(b)), let (.list(a), .list(b)), let (.set(a), .set(b)),
             let (.frozenset(a), .frozenset(b)): a == b
        case let (.dict(a), .dict(b)): a == b
        case let (.global(a), .global(b)): a == b
        case let (.persistent(a), .persistent(b)): a == b
        case let (.object(a), .object(b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(b)
        case .int(let i): hasher.combine(i)
        case .bigInt(let i): hasher.combine(i)
        case .double(let d): hasher.combine(d.bitPattern)
        case .bytes(let b):
            hasher.combine(b.count)
            b.withUnsafeBytes { hasher.combine(bytes: $0) }
        case .string(let s):
            var s = s
            s.withUTF8 { utf8 in
                hasher.combine(utf8.count)
                hasher.combine(bytes: UnsafeRawBufferPointer(utf8))
            }
        case .tuple(let items), .list(let items), .set(let items), .frozenset(let items): hasher.combine(items)
        case .dict(let entries): hasher.combine(entries)
        case .global(let g): hasher.combine(g)
        case .persistent(let r): hasher.combine(r)
        case .object(let o): hasher.combine(o)
        }
    }
}
