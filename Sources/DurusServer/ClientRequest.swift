import Durus
import NIOCore

/// One request of protocol v1, as a client sends it.
enum ClientRequest: Equatable, Sendable {
    /// `V`: the protocol version the client speaks.
    case version(UInt32)
    /// `N`: one new OID.
    case newOID
    /// `M`: this many new OIDs (0–255).
    case newOIDs(count: Int)
    /// `L`: the record of one OID.
    case load(OID)
    /// `B`: the records of the OIDs in this buffer, 8 big-endian bytes each.
    case bulkLoad(ByteBuffer)
    /// `C`: the start of a commit exchange; a ``transaction(_:bytes:)`` follows.
    case commit
    /// The records a client commits, after `C` (none: the client gives the
    /// commit up), and the size of their transaction data.
    case transaction([Record], bytes: Int)
    /// `S`: the invalidations since the client's last exchange.
    case sync
    /// `P`: start a pack.
    case pack
    /// `Q`: stop the server.
    case quit
    /// `.`: the client is leaving.
    case close
    /// `E` (replication sites only): the end of the server's commit log.
    case commitLogEnd
}
