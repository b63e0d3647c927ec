/// What a migration reads: every record of a store or a file, once.
///
/// `BerkeleyDBStorage.migrate(from:batchSize:progress:)` takes one. Every
/// ``Storage`` is a source; a ``FileScan``, a Durus file read front to back
/// with no index, is a source and nothing more.
public protocol MigrationSource {
    /// Calls `body` with every current record. A source may also yield
    /// records that a later one for the same OID supersedes (a ``FileScan``
    /// does): the last one yielded for an OID is the current one.
    func forEachRecord(_ body: (Record) throws -> Void) throws

    /// About how many records ``forEachRecord(_:)`` yields, to show progress
    /// by; nil when the source cannot tell cheaply.
    var estimatedRecordCount: Int? { get }

    /// Releases the source's file or connection.
    func close() throws
}

extension MigrationSource {
    /// Unknown: nil, unless the source tells.
    public var estimatedRecordCount: Int? { nil }
}
