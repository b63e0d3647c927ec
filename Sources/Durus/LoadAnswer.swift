/// The answer to one load, as the server sends it.
package enum LoadAnswer: Sendable, Equatable {
    /// The record.
    case record(Record)
    /// Nothing is stored under the OID.
    case notFound
    /// Another client committed the object since this session synchronized.
    case invalid
}
