/// A pickle that cannot be read (or a value that cannot be written), with the
/// byte offset where it went wrong and, for a record, the record's OID.
///
/// Every way an input can be damaged or hostile ends in one of these; the
/// reader never traps on input.
public struct PickleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong.
    public enum Reason: Hashable, Sendable {
        /// A byte that is no pickle opcode this reader knows.
        case unknownOpcode(UInt8)
        /// The input ends inside an opcode, or before `STOP`.
        case truncated
        /// A length field that is negative or runs past the end of the input.
        case badLength(Int)
        /// An opcode needs more values than the stack holds above the last mark.
        case stackUnderflow
        /// An opcode needs a mark and none is set.
        case noMark
        /// `GET` of a memo index nothing was `PUT` under.
        case memoMissing(Int)
        /// An opcode's argument or operand is not what it takes (text that is
        /// not a number, UTF-8 that is not valid, `REDUCE` arguments that are
        /// not a tuple, …).
        case malformed(String)
        /// Valid pickle that the value model cannot hold (a structure that
        /// contains itself, an extension code, a protocol-5 buffer, …).
        case unsupported(String)
        /// A persistent id that is not a Durus `(oid, class)` pair.
        case badPersistentID
        /// A bound of ``PickleReader/Limits`` or the writer's depth was reached.
        case limitExceeded(String)
        /// Record data that does not start with a Durus class pickle, or a
        /// class pickle that is not a class.
        case notADurusRecord(String)
        /// A compressed state that zlib cannot inflate (within the limit).
        case badCompressedState
    }

    /// The byte offset of the failing opcode, from the start of the pickle
    /// bytes given (record data, or the inflated state when ``inInflatedState``).
    public var offset: Int
    public var reason: Reason
    /// The record the pickle belongs to, when read through ``PickleRecord``.
    public var oid: OID?
    /// True when ``offset`` counts in a record's inflated state pickle.
    public var inInflatedState: Bool

    public init(offset: Int, reason: Reason, oid: OID? = nil, inInflatedState: Bool = false) {
        self.offset = offset
        self.reason = reason
        self.oid = oid
        self.inInflatedState = inInflatedState
    }

    public var description: String {
        let place = (oid.map { "\($0) " } ?? "") + (inInflatedState ? "inflated state " : "") + "offset \(offset)"
        let what = switch reason {
        case .unknownOpcode(let byte): "unknown opcode 0x\(String(byte, radix: 16))"
        case .truncated: "the pickle is truncated"
        case .badLength(let length): "bad length \(length)"
        case .stackUnderflow: "stack underflow"
        case .noMark: "no mark on the stack"
        case .memoMissing(let index): "memo index \(index) was never stored"
        case .malformed(let why): why
        case .unsupported(let why): "unsupported: \(why)"
        case .badPersistentID: "the persistent id is not a Durus (oid, class) pair"
        case .limitExceeded(let why): "limit exceeded: \(why)"
        case .notADurusRecord(let why): "not a Durus pickle record: \(why)"
        case .badCompressedState: "the compressed state does not inflate"
        }
        return "pickle error at \(place): \(what)"
    }
}
