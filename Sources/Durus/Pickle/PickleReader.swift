/// Decodes Python pickles into ``PickleValue``s: protocols 0 to 2 in full
/// (what Python 2's and Python 3's Durus write), and the protocol 3 and 4
/// opcodes that need no new kind of value.
///
/// Like one Python `Unpickler` reading a stream, a reader keeps its memo from
/// one ``load(_:at:)`` to the next: a Durus record is a class pickle followed
/// by a state pickle that refers back to the class pickle's memo. What
/// carries over is each memoized scalar, and each memoized container that
/// the loaded value holds, as the pickle finished it (a later pickle that
/// changes it changes a copy). Within one pickle, a shared list, dict or
/// object is shared as in Python: a change after its `PUT` shows wherever
/// it was used.
///
/// The reader is bounded by its input and its ``Limits``: a length field
/// that runs past the end of the input is an error, not an allocation, and
/// nesting, memo size and the size of a value whose parts the pickle shares
/// many times over are capped. Any input ends in a value or a
/// ``PickleError``; none traps.
///
/// ```swift
/// var reader = PickleReader()
/// let (value, end) = try reader.load(Array(pickleBytes))
/// ```
public struct PickleReader {
    /// The bounds on what one pickle may make the reader build.
    public struct Limits: Sendable {
        /// Deepest nesting of containers and objects in a value.
        public var maxDepth = 1000
        /// Most memo entries a reader holds.
        public var maxMemo = 1 << 20
        /// Most values (scalars, containers, objects) in one decoded value,
        /// counting a shared part once for every place it appears. A pickle
        /// that shares nothing always fits (it takes a byte per value), so
        /// the bound is this or the pickle's length, whichever is larger.
        public var maxValues = 1 << 22
        /// Largest inflated state ``PickleRecord`` accepts.
        public var maxInflatedBytes = 256 << 20
        public init() {}
    }

    /// How Python 2 byte strings (`STRING`, `BINSTRING`, `SHORT_BINSTRING`)
    /// are read.
    public enum LegacyStrings: Sendable {
        /// ASCII text as ``PickleValue/string(_:)``, as Python 3's Durus reads
        /// it; any other bytes as ``PickleValue/bytes(_:)`` (where Python 3
        /// fails).
        case asciiAsString
        /// Always ``PickleValue/bytes(_:)`` (Python's `encoding='bytes'`).
        case bytes
    }

    public var limits: Limits
    public var legacyStrings: LegacyStrings
    /// Turns a persistent id (`BINPERSID`, `PERSID`) into the value that
    /// stands for the object; `nil` rejects it with
    /// ``PickleError/Reason/badPersistentID``.
    public var persistentLoad: (PickleValue) -> PickleValue?
    private var memo = Memo()

    public init(limits: Limits = Limits(), legacyStrings: LegacyStrings = .asciiAsString,
                persistentLoad: @escaping (PickleValue) -> PickleValue? = PickleReader.durusPersistentLoad) {
        self.limits = limits
        self.legacyStrings = legacyStrings
        self.persistentLoad = persistentLoad
    }

    /// Decodes the pickle that starts at `start` in `bytes`, up to its `STOP`.
    /// - Returns: the value, and the offset just past `STOP` (what follows is
    ///   not read, as Python does not).
    /// - Throws: ``PickleError`` with the offset of the opcode that failed;
    ///   the memo is then empty.
    public mutating func load(_ bytes: [UInt8], at start: Int = 0) throws(PickleError) -> (value: PickleValue, end: Int) {
        var machine = Machine(bytes: bytes, position: min(max(0, start), bytes.count), reader: self)
        swap(&machine.memo, &memo)
        defer { machine.tearDown() }
        let item = try machine.run()
        var finisher = Finisher(limits: limits, maxValues: max(limits.maxValues, bytes.count), offset: machine.opcodeStart)
        let value = try finisher.value(item, depth: 0).value
        memo = machine.memo.compactMapValues { item in
            guard case .node(let node) = item else { return item }
            return finisher.done[ObjectIdentifier(node)].map { .leaf($0.value) }
        }
        return (value, machine.position)
    }

    /// Forgets the memo, as between two unrelated pickles.
    public mutating func clearMemo() { memo = Memo() }

    /// Decodes one pickle with a new reader.
    public static func value(of bytes: [UInt8]) throws(PickleError) -> PickleValue {
        var reader = PickleReader()
        return try reader.load(bytes).value
    }

    /// Durus's persistent ids: `(oid, class)`, the OID being 8 big-endian
    /// bytes (`bytes`, or a Python 2 string of 8 characters), or a bare OID.
    public static func durusPersistentLoad(_ pid: PickleValue) -> PickleValue? {
        var oidValue = pid
        var classGlobal: PickleValue.Global?
        if case .tuple(let parts) = pid {
            guard parts.count == 2, case .global(let global) = parts[1] else { return nil }
            oidValue = parts[0]
            classGlobal = global
        }
        let oidBytes: [UInt8]
        switch oidValue {
        case .bytes(let bytes): oidBytes = bytes
        case .string(let text) where text.unicodeScalars.allSatisfy({ $0.value < 256 }):
            oidBytes = text.unicodeScalars.map { UInt8($0.value) }
        default: return nil
        }
        guard oidBytes.count == 8 else { return nil }
        return .persistent(.init(oid: oidBytes.reduce(0) { $0 << 8 | UInt64($1) }, classGlobal: classGlobal))
    }
}

extension PickleReader {
    /// A value under construction: mutable containers and objects are nodes,
    /// shared through the memo as Python shares the objects.
    fileprivate enum Item {
        case leaf(PickleValue)
        case node(Node)
    }

    fileprivate final class Node {
        enum Kind { case list, dict, set, frozenset, tuple, object(PickleValue.Object.Construction) }
        let kind: Kind
        var items: [Item]               // elements; an object's arguments
        var pairs: [(Item, Item)] = []  // a dict's entries; an object's dict items
        var appended: [Item] = []       // an object's list items
        var callable: Item?
        var state: Item?

        init(_ kind: Kind, _ items: [Item] = []) {
            self.kind = kind
            self.items = items
        }
    }

    fileprivate typealias Op = PickleOpcode

    /// The memo: the small indices Python's pickler writes (0, 1, 2, …) in
    /// an array, any other index in a dictionary, so that a pickle naming
    /// one huge index costs one entry, not an array that long.
    fileprivate struct Memo {
        private var dense: [Item?] = []
        private var sparse: [Int: Item] = [:]
        /// The number of entries.
        private(set) var count = 0
        /// Indices below this live in `dense`.
        private static let denseLimit = 1 << 12

        subscript(index: Int) -> Item? {
            if index >= 0 && index < Self.denseLimit { return index < dense.count ? dense[index] : nil }
            return sparse.isEmpty ? nil : sparse[index]
        }

        mutating func put(_ item: Item, at index: Int) {
            if index >= 0 && index < Self.denseLimit {
                if index >= dense.count { dense.append(contentsOf: repeatElement(nil, count: index + 1 - dense.count)) }
                if dense[index] == nil { count += 1 }
                dense[index] = item
            } else if sparse.updateValue(item, forKey: index) == nil {
                count += 1
            }
        }

        /// The entries `transform` keeps, at their indices.
        func compactMapValues(_ transform: (Item) -> Item?) -> Memo {
            var result = Memo()
            result.dense.reserveCapacity(dense.count)
            for index in dense.indices { if let item = dense[index], let kept = transform(item) { result.put(kept, at: index) } }
            for (index, item) in sparse { if let kept = transform(item) { result.put(kept, at: index) } }
            return result
        }
    }

    /// One run of the pickle machine, from an opcode to `STOP`.
    fileprivate struct Machine {
        let bytes: [UInt8]
        var position: Int
        let limits: PickleReader.Limits
        let legacyStrings: PickleReader.LegacyStrings
        let persistentLoad: (PickleValue) -> PickleValue?
        var memo = Memo()
        var opcodeStart = 0
        var stack: [Item] = []
        var marks: [Int] = []
        var nodes: [Node] = []

        init(bytes: [UInt8], position: Int, reader: PickleReader) {
            self.bytes = bytes
            self.position = position
            limits = reader.limits
            legacyStrings = reader.legacyStrings
            persistentLoad = reader.persistentLoad
        }

        func fail(_ reason: PickleError.Reason) -> PickleError { PickleError(offset: opcodeStart, reason: reason) }

        mutating func newNode(_ kind: Node.Kind, _ items: [Item] = []) -> Node {
            let node = Node(kind, items)
            nodes.append(node)
            return node
        }

        /// Unlinks every node, so that neither a structure that contains itself
        /// (a leak) nor one nested a million deep (a recursive release) outlives
        /// the load.
        func tearDown() {
            for node in nodes {
                node.items = []
                node.pairs = []
                node.appended = []
                node.callable = nil
                node.state = nil
            }
        }

        // MARK: Operands

        mutating func take(_ count: Int, counted: Bool = true) throws(PickleError) -> ArraySlice<UInt8> {
            guard count >= 0, count <= bytes.count - position else {
                throw fail(counted ? .badLength(count) : .truncated)
            }
            defer { position += count }
            return bytes[position ..< position + count]
        }

        mutating func byte() throws(PickleError) -> UInt8 {
            guard position < bytes.count else { throw fail(.truncated) }
            defer { position += 1 }
            return bytes[position]
        }

        /// A little-endian unsigned operand of `size` bytes.
        mutating func uint(_ size: Int) throws(PickleError) -> UInt64 {
            try take(size, counted: false).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }

        /// A length operand of `size` bytes (signed when `size` is 4 and `signed`).
        mutating func length(_ size: Int, signed: Bool = false) throws(PickleError) -> Int {
            let raw = try uint(size)
            if signed { return Int(Int32(truncatingIfNeeded: raw)) }
            return raw > UInt64(Int.max) ? Int.max : Int(raw)
        }

        /// The text up to the next newline (protocol 0 operands).
        mutating func line() throws(PickleError) -> ArraySlice<UInt8> {
            guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw fail(.truncated) }
            defer { position = end + 1 }
            return bytes[position ..< end]
        }

        func utf8(_ bytes: ArraySlice<UInt8>, _ what: String) throws(PickleError) -> String {
            guard let text = String(validating: bytes, as: UTF8.self) else { throw fail(.malformed("\(what) is not valid UTF-8")) }
            return text
        }

        func decimal(_ text: ArraySlice<UInt8>) throws(PickleError) -> PickleValue {
            guard text.count <= 4301 else { throw fail(.limitExceeded("an integer of more than 4300 digits")) }
            guard let big = PickleValue.BigInt(decimal: text) else { throw fail(.malformed("'\(String(decoding: text, as: UTF8.self))' is not an integer")) }
            return big.int64.map { .int($0) } ?? .bigInt(big)
        }

        func index(_ text: ArraySlice<UInt8>) throws(PickleError) -> Int {
            guard text.count <= 18, case .int(let n) = try decimal(text), n >= 0 else { throw fail(.malformed("bad memo index")) }
            return Int(n)
        }

        func legacyString(_ bytes: some Collection<UInt8>) -> PickleValue {
            if legacyStrings == .asciiAsString, bytes.allSatisfy({ $0 < 0x80 }) {
                return .string(String(decoding: bytes, as: UTF8.self))
            }
            return .bytes(Array(bytes))
        }

        // MARK: Stack

        var fence: Int { marks.last ?? 0 }

        mutating func push(_ value: PickleValue) { stack.append(.leaf(value)) }
        mutating func pushNode(_ kind: Node.Kind, _ items: [Item] = []) { stack.append(.node(newNode(kind, items))) }

        mutating func pop() throws(PickleError) -> Item {
            guard stack.count > fence else { throw fail(.stackUnderflow) }
            return stack.removeLast()
        }

        func top() throws(PickleError) -> Item {
            guard stack.count > fence else { throw fail(.stackUnderflow) }
            return stack[stack.count - 1]
        }

        mutating func popMark() throws(PickleError) -> [Item] {
            guard let mark = marks.popLast() else { throw fail(.noMark) }
            defer { stack.removeSubrange(mark...) }
            return Array(stack[mark...])
        }

        func pairs(_ items: [Item]) throws(PickleError) -> [(Item, Item)] {
            guard items.count % 2 == 0 else { throw fail(.malformed("an odd number of items for a dict")) }
            return stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
        }

        func node(_ item: Item, _ what: String) throws(PickleError) -> Node {
            guard case .node(let node) = item else { throw fail(.malformed("\(what) on a value that does not take it")) }
            return node
        }

        mutating func memoPut(_ index: Int) throws(PickleError) {
            let item = try top()
            guard memo[index] != nil || memo.count < limits.maxMemo else {
                throw fail(.limitExceeded("more than \(limits.maxMemo) memo entries"))
            }
            memo.put(item, at: index)
        }

        mutating func memoGet(_ index: Int) throws(PickleError) {
            guard let item = memo[index] else { throw fail(.memoMissing(index)) }
            stack.append(item)
        }

        // MARK: The machine

        mutating func run() throws(PickleError) -> Item {
            while true {
                opcodeStart = position
                let op = try byte()
                switch op {
                case Op.proto:
                    let version = try byte()
                    guard version <= 5 else { throw fail(.unsupported("protocol \(version)")) }
                case Op.frame: _ = try take(8, counted: false)
                case Op.stop: return try pop()
                case Op.mark: marks.append(stack.count)
                case Op.pop: if stack.count > fence { stack.removeLast() } else { _ = try popMark() }
                case Op.popMark: _ = try popMark()
                case Op.dup: stack.append(try top())

                case Op.none: push(.null)
                case Op.newTrue: push(.bool(true))
                case Op.newFalse: push(.bool(false))
                case Op.int:
                    let text = try line()
                    if text.elementsEqual("00".utf8) { push(.bool(false)) }
                    else if text.elementsEqual("01".utf8) { push(.bool(true)) }
                    else { push(try decimal(text)) }
                case Op.long:
                    let text = try line()
                    push(try decimal(text.last == UInt8(ascii: "L") ? text.dropLast() : text))
                case Op.binInt: push(.int(Int64(Int32(truncatingIfNeeded: try uint(4)))))
                case Op.binInt1: push(.int(Int64(try byte())))
                case Op.binInt2: push(.int(Int64(try uint(2))))
                case Op.long1: push(.integer(littleEndian: try take(Int(try byte()))))
                case Op.long4: push(.integer(littleEndian: try take(try length(4, signed: true))))
                case Op.float:
                    let text = try line()
                    guard let double = Double(String(decoding: text, as: UTF8.self)) else { throw fail(.malformed("FLOAT is not a number")) }
                    push(.double(double))
                case Op.binFloat: push(.double(Double(bitPattern: try uint(8).byteSwapped)))

                // An operand is read before the non-mutating helper that takes
                // it is called: read within the call, it would make Swift copy
                // the whole machine to call the helper on.
                case Op.string: let text = try line(); push(legacyString(try quoted(text)))
                case Op.binString: let raw = try take(try length(4, signed: true)); push(legacyString(raw))
                case Op.shortBinString: let raw = try take(try length(1)); push(legacyString(raw))
                case Op.unicode: let text = try line(); push(.string(try rawUnicodeEscape(text)))
                case Op.binUnicode: let raw = try take(try length(4)); push(.string(try utf8(raw, "BINUNICODE")))
                case Op.shortBinUnicode: let raw = try take(try length(1)); push(.string(try utf8(raw, "SHORT_BINUNICODE")))
                case Op.binUnicode8: let raw = try take(try length(8)); push(.string(try utf8(raw, "BINUNICODE8")))
                case Op.binBytes: push(.bytes(Array(try take(try length(4)))))
                case Op.shortBinBytes: push(.bytes(Array(try take(try length(1)))))
                case Op.binBytes8: push(.bytes(Array(try take(try length(8)))))

                case Op.emptyTuple: pushNode(.tuple)
                case Op.emptyList: pushNode(.list)
                case Op.emptyDict: pushNode(.dict)
                case Op.emptySet: pushNode(.set)
                case Op.tuple: pushNode(.tuple, try popMark())
                case Op.list: pushNode(.list, try popMark())
                case Op.frozenSet: pushNode(.frozenset, try popMark())
                case Op.dict:
                    let dict = newNode(.dict), items = try popMark()
                    dict.pairs = try pairs(items)
                    stack.append(.node(dict))
                case Op.tuple1, Op.tuple2, Op.tuple3:
                    let count = Int(op - Op.tuple1) + 1
                    guard stack.count - fence >= count else { throw fail(.stackUnderflow) }
                    let items = Array(stack.suffix(count))
                    stack.removeLast(count)
                    pushNode(.tuple, items)

                case Op.append: let item = try pop(); try append([item], to: try top())
                case Op.appends: let items = try popMark(); try append(items, to: try top())
                case Op.setItem:
                    let value = try pop(), key = try pop()
                    try setItems([(key, value)], in: try top())
                case Op.setItems: let items = try popMark(); try setItems(try pairs(items), in: try top())
                case Op.addItems:
                    let items = try popMark(), target = try node(try top(), "ADDITEMS")
                    guard case .set = target.kind else { throw fail(.malformed("ADDITEMS on a value that is not a set")) }
                    target.items += items
                case Op.build:
                    let state = try pop(), target = try node(try top(), "BUILD")
                    guard case .object = target.kind, target.state == nil else {
                        throw fail(.unsupported("BUILD on a value that is not a newly built object"))
                    }
                    target.state = state

                case Op.global:
                    let moduleText = try line(), nameText = try line()
                    let module = try utf8(moduleText, "GLOBAL module"), name = try utf8(nameText, "GLOBAL name")
                    push(.global(.init(module, name)))
                case Op.stackGlobal:
                    guard case .leaf(.string(let name)) = try pop(), case .leaf(.string(let module)) = try pop() else {
                        throw fail(.malformed("STACK_GLOBAL needs two strings"))
                    }
                    push(.global(.init(module, name)))
                case Op.inst:
                    let moduleText = try line(), nameText = try line()
                    let module = try utf8(moduleText, "INST module"), name = try utf8(nameText, "INST name")
                    object(.instantiate, callable: .leaf(.global(.init(module, name))), arguments: try popMark())
                case Op.obj:
                    let items = try popMark()
                    guard let callable = items.first else { throw fail(.stackUnderflow) }
                    object(.instantiate, callable: callable, arguments: Array(items.dropFirst()))
                case Op.reduce:
                    let tuple = try pop(), arguments = try tupleItems(tuple, "REDUCE"), callable = try pop()
                    if let special = reduced(callable, arguments) { stack.append(special) }
                    else { object(.reduce, callable: callable, arguments: arguments) }
                case Op.newObj:
                    let tuple = try pop(), arguments = try tupleItems(tuple, "NEWOBJ"), callable = try pop()
                    object(.newObject, callable: callable, arguments: arguments)

                case Op.persID: let text = try line(); try persistent(.string(try utf8(text, "PERSID")))
                case Op.binPersID:
                    // A persistent id is small (Durus's has 3 parts): a bound keeps
                    // many of them that share one big value from costing much.
                    var finisher = Finisher(limits: limits, maxValues: 64, offset: opcodeStart)
                    guard let pid = try? finisher.value(try pop(), depth: 0).value else { throw fail(.badPersistentID) }
                    try persistent(pid)

                case Op.put: let text = try line(); try memoPut(try index(text))
                case Op.binPut: try memoPut(Int(try byte()))
                case Op.longBinPut: try memoPut(try length(4))
                case Op.memoize: try memoPut(memo.count)
                case Op.get: let text = try line(); try memoGet(try index(text))
                case Op.binGet: try memoGet(Int(try byte()))
                case Op.longBinGet: try memoGet(try length(4))

                case Op.ext1 ... Op.ext4: throw fail(.unsupported("extension codes (copyreg.add_extension)"))
                case Op.newObjEx: throw fail(.unsupported("NEWOBJ_EX (keyword arguments)"))
                case 0x96 ... 0x98: throw fail(.unsupported("protocol 5 buffers"))
                default: throw fail(.unknownOpcode(op))
                }
            }
        }

        mutating func append(_ items: [Item], to target: Item) throws(PickleError) {
            let node = try node(target, "APPEND")
            switch node.kind {
            case .list: node.items += items
            case .object: node.appended += items
            default: throw fail(.malformed("APPEND to a value that is not a list"))
            }
        }

        mutating func setItems(_ entries: [(Item, Item)], in target: Item) throws(PickleError) {
            let node = try node(target, "SETITEM")
            switch node.kind {
            case .dict, .object: node.pairs += entries
            default: throw fail(.malformed("SETITEM on a value that is not a dict"))
            }
        }

        func tupleItems(_ item: Item, _ opcode: String) throws(PickleError) -> [Item] {
            guard case .node(let node) = item, case .tuple = node.kind else { throw fail(.malformed("\(opcode) arguments are not a tuple")) }
            return node.items
        }

        mutating func object(_ construction: PickleValue.Object.Construction, callable: Item, arguments: [Item]) {
            let node = newNode(.object(construction), arguments)
            node.callable = callable
            stack.append(.node(node))
        }

        /// What Python 3 writes for builtins at protocol 2: `bytes` as
        /// `_codecs.encode(text, 'latin1')` or `bytes()`, sets as `set([…])`.
        mutating func reduced(_ callable: Item, _ arguments: [Item]) -> Item? {
            guard case .leaf(.global(let global)) = callable else { return nil }
            let builtin = global.module == "__builtin__" || global.module == "builtins"
            switch (global.name, arguments.count) {
            case ("encode", 2) where global.module == "_codecs":
                guard case .leaf(.string(let text)) = arguments[0], case .leaf(.string("latin1")) = arguments[1],
                      text.unicodeScalars.allSatisfy({ $0.value < 256 }) else { return nil }
                return .leaf(.bytes(text.unicodeScalars.map { UInt8($0.value) }))
            case ("bytes", 0) where builtin: return .leaf(.bytes([]))
            case ("set", 0) where builtin, ("frozenset", 0) where builtin:
                return .node(newNode(global.name == "set" ? .set : .frozenset))
            case ("set", 1) where builtin, ("frozenset", 1) where builtin:
                guard case .node(let list) = arguments[0], case .list = list.kind else { return nil }
                return .node(newNode(global.name == "set" ? .set : .frozenset, list.items))
            default: return nil
            }
        }

        mutating func persistent(_ pid: PickleValue) throws(PickleError) {
            guard let value = persistentLoad(pid) else { throw fail(.badPersistentID) }
            push(value)
        }

        /// A `STRING` operand: a quoted Python 2 `repr`, with its escapes.
        func quoted(_ text: ArraySlice<UInt8>) throws(PickleError) -> [UInt8] {
            guard text.count >= 2, let quote = text.first, quote == text.last,
                  quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else {
                throw fail(.malformed("the STRING argument is not quoted"))
            }
            var out: [UInt8] = []
            var index = text.startIndex + 1
            let end = text.endIndex - 1
            while index < end {
                let byte = text[index]
                index += 1
                guard byte == UInt8(ascii: "\\") else { out.append(byte); continue }
                guard index < end else { throw fail(.malformed("a trailing \\ in STRING")) }
                let escape = text[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\n"): break
                case UInt8(ascii: "a"): out.append(7)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "v"): out.append(11)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "0") ... UInt8(ascii: "7"):
                    var value = Int(escape - UInt8(ascii: "0"))
                    for _ in 0 ..< 2 where index < end && (UInt8(ascii: "0") ... UInt8(ascii: "7")).contains(text[index]) {
                        value = value * 8 + Int(text[index] - UInt8(ascii: "0"))
                        index += 1
                    }
                    out.append(UInt8(truncatingIfNeeded: value))
                case UInt8(ascii: "x"):
                    guard end - index >= 2, let value = hex(text[index ..< index + 2]) else {
                        throw fail(.malformed("a bad \\x escape in STRING"))
                    }
                    out.append(UInt8(value))
                    index += 2
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(escape)
                default: out += [UInt8(ascii: "\\"), escape]
                }
            }
            return out
        }

        /// Hexadecimal digits (and nothing else) as a number.
        func hex(_ digits: ArraySlice<UInt8>) -> UInt32? {
            var value: UInt32 = 0
            for digit in digits {
                switch digit {
                case UInt8(ascii: "0") ... UInt8(ascii: "9"): value = value << 4 | UInt32(digit - UInt8(ascii: "0"))
                case UInt8(ascii: "a") ... UInt8(ascii: "f"): value = value << 4 | UInt32(digit - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A") ... UInt8(ascii: "F"): value = value << 4 | UInt32(digit - UInt8(ascii: "A") + 10)
                default: return nil
                }
            }
            return value
        }

        /// A `UNICODE` operand: Latin-1 text with `\uXXXX` and `\UXXXXXXXX` escapes.
        func rawUnicodeEscape(_ text: ArraySlice<UInt8>) throws(PickleError) -> String {
            var scalars = String.UnicodeScalarView()
            var index = text.startIndex
            while index < text.endIndex {
                let byte = text[index]
                let next = index + 1 < text.endIndex ? text[index + 1] : 0
                guard byte == UInt8(ascii: "\\"), next == UInt8(ascii: "u") || next == UInt8(ascii: "U") else {
                    scalars.append(Unicode.Scalar(byte))
                    index += 1
                    continue
                }
                let digits = next == UInt8(ascii: "u") ? 4 : 8
                guard text.endIndex - index >= 2 + digits,
                      let value = hex(text[index + 2 ..< index + 2 + digits]),
                      let scalar = Unicode.Scalar(value) else {
                    throw fail(.malformed("a bad \\u escape in UNICODE"))
                }
                scalars.append(scalar)
                index += 2 + digits
            }
            return String(scalars)
        }
    }

    /// Turns the nodes of a finished pickle into a value, bounded in depth and
    /// in size; a node the pickle shares is converted once.
    fileprivate struct Finisher {
        let limits: PickleReader.Limits
        let maxValues: Int
        let offset: Int
        var done: [ObjectIdentifier: (value: PickleValue, size: Int)] = [:]
        var active: Set<ObjectIdentifier> = []

        init(limits: PickleReader.Limits, maxValues: Int, offset: Int) {
            self.limits = limits
            self.maxValues = maxValues
            self.offset = offset
        }

        func fail(_ reason: PickleError.Reason) -> PickleError { PickleError(offset: offset, reason: reason) }

        mutating func value(_ item: Item, depth: Int) throws(PickleError) -> (value: PickleValue, size: Int) {
            let node: Node
            switch item {
            case .leaf(let value): return (value, 1)
            case .node(let inner): node = inner
            }
            let id = ObjectIdentifier(node)
            if let known = done[id] { return known }
            guard depth < limits.maxDepth else { throw fail(.limitExceeded("values nested deeper than \(limits.maxDepth)")) }
            guard active.insert(id).inserted else { throw fail(.unsupported("a value that contains itself")) }
            var size = 1
            let items = try values(node.items, depth: depth + 1, size: &size)
            let value: PickleValue
            switch node.kind {
            case .list: value = .list(items)
            case .tuple: value = .tuple(items)
            case .set: value = .set(items)
            case .frozenset: value = .frozenset(items)
            case .dict: value = .dict(try entries(node.pairs, depth: depth + 1, size: &size))
            case .object(let construction):
                var parts = try values([node.callable ?? .leaf(.null)] + (node.state.map { [$0] } ?? []), depth: depth + 1, size: &size)
                value = .object(.init(callable: parts.removeFirst(), arguments: items, construction: construction,
                                      state: parts.first, listItems: try values(node.appended, depth: depth + 1, size: &size),
                                      dictItems: try entries(node.pairs, depth: depth + 1, size: &size)))
            }
            active.remove(id)
            done[id] = (value, size)
            return (value, size)
        }

        mutating func values(_ items: [Item], depth: Int, size: inout Int) throws(PickleError) -> [PickleValue] {
            var out: [PickleValue] = []
            out.reserveCapacity(items.count)
            for item in items {
                let (value, count) = try value(item, depth: depth)
                size += count
                guard size <= maxValues else { throw fail(.limitExceeded("a value of more than \(maxValues) parts")) }
                out.append(value)
            }
            return out
        }

        mutating func entries(_ pairs: [(Item, Item)], depth: Int, size: inout Int) throws(PickleError) -> [PickleValue.Entry] {
            var out: [PickleValue.Entry] = []
            out.reserveCapacity(pairs.count)
            for (key, value) in pairs {
                let both = try values([key, value], depth: depth, size: &size)
                out.append(.init(both[0], both[1]))
            }
            return out
        }
    }
}
