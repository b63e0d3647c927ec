#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A view of a store through which a program works with persistent objects:
/// an identity map, a cache, and the transaction between two commits.
///
/// ```swift
/// let connection = try database.open()
/// let bank = try connection.root(Bank.self)
/// bank.accounts["bob"] = Account(owner: "bob")
/// do {
///     try connection.commit()
/// } catch is ConflictError {
///     connection.abort()          // then retry with fresh state
/// }
/// ```
///
/// **Isolation.** Between two commits (or aborts) a connection sees the store
/// as it was, with its own changes: reads are repeatable (degree 3). Loading
/// an object that another client committed since this connection last
/// synchronized throws ``ConflictError`` of kind `read` when this transaction
/// has already used an object that changed too; otherwise the connection
/// synchronizes and loads the newer state. Committing after
/// another client changed an object this transaction accessed throws one of
/// kind `write`. Objects changed elsewhere but not accessed in this
/// transaction just become ghosts. After any conflict: ``abort()``, retry.
///
/// **Cache.** Loaded objects stay in memory up to
/// ``Database/Configuration/cacheSize``; at each commit or abort the least
/// recently used beyond that are ghosted (their state dropped). Objects are
/// held weakly otherwise: one OID is one instance while anything holds it.
///
/// A connection and its objects belong to one thread or task at a time.
public final class Connection {
    let core: ConnectionCore

    init(storage: any Storage, configuration: Database.Configuration) {
        core = ConnectionCore(storage: storage, configuration: configuration)
        core.handle = self
    }

    deinit { core.handleReleased() }

    /// Incremented by every commit and abort; objects note it when accessed.
    public var serial: Int { core.serial }
    /// How many records this connection has loaded.
    public var loadCount: Int { core.loadCount }
    /// The number of objects with their state in memory.
    public var cachedCount: Int { core.cachedCount }
    /// The first load failure of this transaction (inside a property
    /// accessor, which cannot throw); ``commit()`` throws it.
    public var pendingError: (any Error)? { core.pendingError }

    /// The root object (OID 0), loaded.
    /// - Throws: ``DurusError/keyNotFound(_:)`` when the store has no root,
    ///   or ``DurusError/badState(oid:reason:)`` when the root is of another type.
    public func root<T: PersistentObject>(_ type: T.Type = T.self) throws -> T { try core.root(type) }

    /// The object stored under `oid`, with its state loaded.
    public func get(_ oid: OID) throws -> PersistentObject { try core.get(oid) }

    /// Stores every changed object and every new object reachable from them
    /// (new objects get their OIDs here), atomically. With nothing changed,
    /// it only synchronizes. Then shrinks the cache and starts a new transaction.
    ///
    /// - Throws: ``ConflictError`` (then ``abort()`` and retry);
    ///   ``DurusError/foreignObject(_:)`` when an object of another connection
    ///   is linked in; the error of a load that failed inside an accessor.
    ///   New objects of a failed commit are detached again and can be reused.
    ///   ``DurusError/commitNotDurable(reason:)`` is the one error after which
    ///   the commit stands: stored and visible to others, with its new objects
    ///   saved, but not confirmed on the disk. (Over `ClientStorage`, a
    ///   server that applied a commit but could not flush it drops the
    ///   client: the connection then sees a network error, and that commit
    ///   is in doubt, as after a crash.)
    public func commit() throws { try core.commit() }

    /// Drops this transaction's changes (changed objects become ghosts; new
    /// objects are left as they are, free to be linked again), applies what
    /// others committed, shrinks the cache and starts a new transaction.
    public func abort() { core.abort() }

    /// Ghosts the least recently used objects beyond the cache size now.
    /// Between commits this breaks repeatable reads (degree 2 isolation):
    /// an object ghosted here may load a newer state later in the transaction.
    public func shrinkCache() { core.shrinkCache() }
}

/// The working part of a ``Connection``. Objects hold it strongly, so an object
/// the program keeps can always load; the public handle holds it too, and when
/// the handle goes the cache lets go of its objects (breaking the cycle).
@usableFromInline final class ConnectionCore {
    /// The public handle, while the program holds it.
    weak var handle: Connection?
    /// Set when the handle is gone: objects still held can load, but nothing
    /// is kept in the cache any more.
    private var released = false

    let storage: any Storage
    let configuration: Database.Configuration
    /// Read at every property access of every object: unchecked for
    /// exclusivity, since only the connection writes it, never during an access.
    @usableFromInline @exclusivity(unchecked) private(set) var serial = 1
    private(set) var loadCount = 0

    /// The identity map. Unowned, not weak: weak references would give every
    /// object a side table and slow down every retain of it; instead an
    /// object removes itself here when it is freed (see `forget`).
    private let objects = IdentityMap()
    /// Types met so far, so a ghost costs no trip to the shared registry.
    private var types: [String: PersistentObject.Type] = [:]
    private var lastGhostType: (name: [UInt8], type: PersistentObject.Type)?
    /// Types whose last compressed state shrank by less than an eighth, and
    /// how many of their states to write before trying again: deflating
    /// states that barely shrink (nodes of random numbers) would cost about
    /// half of every commit.
    private var compressionSkips: [ObjectIdentifier: Int] = [:]
    static let compressionRetry = 15
    private var resident = ResidentObjects()
    private var changed: [OID: PersistentObject] = [:]
    private var invalid: Set<OID> = []
    /// Objects given placeholder state after a failed load in an accessor.
    private var placeholders: [PersistentObject] = []
    private(set) var pendingError: (any Error)?
    /// OIDs the storage handed out for new objects and no commit used yet,
    /// the next one last: taken a block at a time, not one call per object.
    private var freshOIDs: [OID] = []
    /// The storage's ``Storage/sessionGeneration`` when invalidations were last read.
    private var generation: Int

    init(storage: any Storage, configuration: Database.Configuration) {
        self.storage = storage
        self.configuration = configuration
        generation = storage.sessionGeneration
    }

    func handleReleased() {
        released = true
        resident.removeAll()
        changed.removeAll()
        placeholders.removeAll()
    }

    var cachedCount: Int { resident.count }

    // MARK: Getting objects

    func root<T: PersistentObject>(_ type: T.Type = T.self) throws -> T {
        let object = try get(.root, declared: T.self)
        guard let root = object as? T else {
            throw DurusError.badState(oid: .root, reason: "the root is a \(Swift.type(of: object).persistentTypeName), not a \(T.persistentTypeName)")
        }
        return root
    }

    /// The object stored under `oid`, loaded; `declared` is the type the
    /// caller expects, which decides among the Swift types mapped to one
    /// Python class.
    func get(_ oid: OID, declared: PersistentObject.Type? = nil) throws -> PersistentObject {
        if let object = objects[oid] {
            if object.status == .ghost { try load(object) }
            object.serial = serial
            return object
        }
        let record = try fetch(oid)
        // The header names the type; `parse` (which inflates) runs once, in `apply`,
        // and here only to report a record whose header is unreadable.
        let name = try ObjectRecord.swiftTypeName(of: record.data)
            ?? ObjectRecord.typeName(of: record.data).map { Array($0.utf8)[...] }
            ?? ObjectRecord.parse(record.data, oid: oid).name
        let object = makeGhost(oid, type: try ghostType(named: name, declared: declared))
        objects.insert(object, for: oid)
        try apply(record, to: object)
        return object
    }

    // MARK: Transactions

    func commit() throws {
        if let pendingError { throw pendingError }
        guard !changed.isEmpty else {
            try synchronize()
            endTransaction()
            return
        }
        guard invalid.isEmpty else { throw DurusError.abortRequired }
        let generationAtStart = generation
        var newObjects: [PersistentObject] = []
        var records: [Record] = []
        var inDoubt: DurusError?
        do {
            var queue = Array(changed.values)
            var written: Set<OID> = []
            var states: [EncodedState] = []
            while let object = queue.popLast() {
                guard let oid = object.oid, written.insert(oid).inserted else { continue }
                var references: Set<OID> = []
                let reference: (PersistentObject) throws -> OID = { [unowned self] target in
                    if let targetOID = target.oid {
                        guard target.core === self else { throw DurusError.foreignObject(targetOID) }
                        references.insert(targetOID)
                        return targetOID
                    }
                    let assigned = try nextFreshOID(newSoFar: newObjects.count)
                    target.oid = assigned
                    target.core = self
                    objects.insert(target, for: assigned)
                    newObjects.append(target)
                    queue.append(target)
                    references.insert(assigned)
                    return assigned
                }
                var encoder = PersistentStateEncoder(encoder: StateEncoder(reference: reference))
                let python = object.pythonClassName
                if python != nil { encoder.pickler = PickleStateEncoder(reference: reference) }
                try object.encodeState(&encoder)
                let typeName = PersistentTypes.name(of: type(of: object))
                var pickled: [UInt8]?
                if python != nil {
                    // As Python Durus writes it: the class pickle, then the state
                    // pickle, compressed when it is big enough to gain (Durus
                    // reads a state that is not compressed as well).
                    do {
                        pickled = try PickleRecord(classGlobal: PythonState.global(python ?? typeName), state: encoder.pickledState)
                            .data(compressed: configuration.compression, minimumCompressedSize: configuration.minimumCompressedSize)
                    } catch {
                        throw DurusError.badState(oid: oid, reason: "its state cannot be pickled for Python: \(error)")
                    }
                }
                states.append(EncodedState(oid: oid, type: type(of: object), typeName: typeName,
                                           body: pickled == nil ? encoder.finish() : [], pickled: pickled, references: references))
            }
            records = recordData(states)
            do {
                try storage.commit(records, handleInvalidations: { oids in try handleInvalidations(oids, readOID: nil) })
            } catch DurusError.commitNotDurable(let reason) {
                // Stored: bookkept as committed below, then reported.
                inDoubt = .commitNotDurable(reason: reason)
            }
        } catch {
            let sameSession = generationAtStart == storage.sessionGeneration
            for object in newObjects {
                // Nothing was stored: the OID is still ours, for the next new object.
                if let oid = object.oid { objects.remove(oid); if sameSession { freshOIDs.append(oid) } }
                object.oid = nil
                object.core = nil
                object.status = .unsaved
            }
            throw error
        }
        for object in changed.values {
            object.status = .saved
            if object.oid != nil, !released { resident.insert(object) }
        }
        for object in newObjects {
            object.status = .saved
            object.serial = serial
            if object.oid != nil, !released { resident.insert(object) }
        }
        changed.removeAll(keepingCapacity: true)
        endTransaction()
        if let inDoubt { throw inDoubt }
    }

    /// An OID for a new object. Blocks grow with the commit's new objects so
    /// far (16 to 1,024), so a commit of a thousand new objects asks the
    /// storage a few times, and a small one reserves few OIDs it may not use.
    private func nextFreshOID(newSoFar: Int) throws -> OID {
        if let oid = freshOIDs.popLast() { return oid }
        freshOIDs = try storage.newOIDs(count: min(max(16, newSoFar), 1024)).reversed()
        return freshOIDs.removeLast()
    }

    func abort() {
        for object in changed.values { ghostify(object) }
        changed.removeAll(keepingCapacity: true)
        for object in placeholders { ghostify(object) }
        placeholders.removeAll()
        pendingError = nil
        do {
            try synchronize()
        } catch {
            // The storage is unreachable: every cached object may be stale.
            for object in resident.objects { ghostify(object) }
        }
        endTransaction()
    }

    func shrinkCache() {
        let limit = configuration.cacheSize
        guard resident.count > limit else { return }
        // Down to 7/8 of the target, so the sort is paid once per many loads.
        let keep = limit - limit / 8
        let candidates = resident.objects.filter { $0.status == .saved }.sorted { $0.serial < $1.serial }
        for object in candidates.prefix(resident.count - keep) { ghostify(object) }
    }

    // MARK: For the object layer

    func registerAdopted(_ object: PersistentObject) {
        guard let oid = object.oid else { return }
        objects.insert(object, for: oid)
        object.status = .unsaved
        object.serial = serial
        changed[oid] = object
    }

    /// Called by an object being freed.
    func forget(_ oid: OID, _ object: PersistentObject) {
        // Compared by identity only: the object is mid-deinit and must not be retained.
        objects.remove(oid, ifItIs: ObjectIdentifier(object))
    }

    func noteChange(_ object: PersistentObject) {
        guard let oid = object.oid else { return }
        changed[oid] = object
    }

    /// Loads a ghost from a property accessor, which cannot throw: a failure
    /// leaves a placeholder state and dooms the transaction.
    @usableFromInline func loadFromAccessor(_ object: PersistentObject) {
        do {
            try load(object)
        } catch {
            if pendingError == nil { pendingError = error }
            object.setPlaceholderState()
            object.status = .saved
            placeholders.append(object)
        }
    }

    /// Loads the state of a ghost.
    func load(_ object: PersistentObject) throws {
        guard let oid = object.oid else { return }
        try apply(try fetch(oid), to: object)
    }

    // MARK: Internals

    /// The records of encoded states, compressed as ``Database/Configuration/compression``
    /// and ``Database/Configuration/minimumCompressedSize`` say: a type whose
    /// last compressed state shrank by less than an eighth is written plain
    /// for its next `compressionRetry` states of that size. Large commits
    /// compress on several threads: deflate is most of their cost.
    private func recordData(_ states: [EncodedState]) -> [Record] {
        let minimum = configuration.minimumCompressedSize
        var compress = states.map { configuration.compression && $0.body.count >= minimum }
        if configuration.compression {
            for (index, state) in states.enumerated() where compress[index] {
                let kind = ObjectIdentifier(state.type)
                guard let skips = compressionSkips[kind] else { continue }
                // A type that compressed poorly: plain, or a trial (assumed poor until it pays).
                compress[index] = skips == 0
                compressionSkips[kind] = skips == 0 ? Self.compressionRetry : skips - 1
            }
        }
        var results = [(bytes: [UInt8], compression: ObjectRecord.Compression)](repeating: ([], .notTried), count: states.count)
        let bodyBytes = states.reduce(0) { $0 + $1.body.count }
        let lanes = bodyBytes >= 256 << 10 && states.count >= 16 ? Swift.min(8, ProcessInfo.processInfo.activeProcessorCount) : 1
        let decided = compress
        results.withUnsafeMutableBufferPointer { output in
            let output = UncheckedSendable(output)
            let work: @Sendable (Int) -> Void = { lane in
                for index in stride(from: lane, to: states.count, by: lanes) {
                    let state = states[index]
                    if let pickled = state.pickled {
                        output.value[index] = (pickled, .notTried)
                        continue
                    }
                    output.value[index] = ObjectRecord.data(typeName: state.typeName, body: state.body,
                                                            compress: decided[index])
                }
            }
            if lanes > 1 { DispatchQueue.concurrentPerform(iterations: lanes, execute: work) } else { work(0) }
        }
        var records: [Record] = []
        records.reserveCapacity(states.count)
        for (state, result) in zip(states, results) {
            let kind = ObjectIdentifier(state.type)
            switch result.compression {
            case .paid: compressionSkips[kind] = nil
            case .poor where compressionSkips[kind] == nil: compressionSkips[kind] = Self.compressionRetry
            case .poor, .notTried: break
            }
            records.append(Record(oid: state.oid, data: result.bytes, references: state.references))
        }
        return records
    }

    private func endTransaction() {
        shrinkCache()
        serial += 1
    }

    /// Reads a record, turning a read conflict on an object that this
    /// transaction did not access into a sync and a retry, as Durus does.
    private func fetch(_ oid: OID) throws -> Record {
        let record: Record
        do {
            record = try storage.load(oid)
        } catch let conflict as ConflictError where conflict.kind == .read {
            try handleInvalidations(try storage.sync(), readOID: oid)
            record = try storage.load(oid)
        } catch DurusError.keyNotFound(let missing) where objects.contains(missing) {
            // A ghost whose object was collected: the reference was stale.
            throw ConflictError(.read, oids: [missing])
        }
        // The storage moved to another server: what this transaction read may be stale.
        if storage.sessionGeneration != generation { try handleInvalidations([], readOID: oid) }
        return record
    }

    private func apply(_ record: Record, to object: PersistentObject) throws {
        let oid = record.oid
        let (name, body) = try PickleRecord.isDurusPickle(record.data)
            ? Self.pythonState(record) : ObjectRecord.parse(record.data, oid: oid)
        // Usually the name the last ghost was made for, of this very type: no String, no registry lock.
        if !(lastGhostType.map { $0.type == type(of: object) && sameBytes($0.name, name) } ?? false) {
            let typeName = String(decoding: name, as: UTF8.self)
            if !PersistentTypes.isName(typeName, of: type(of: object)), !type(of: object).mapsPythonClass(name) {
                let expected = PersistentTypes.name(of: type(of: object))
                guard PersistentTypes.type(named: typeName) != nil else { throw DurusError.unknownType(typeName) }
                throw DurusError.badState(oid: oid, reason: "the record holds a \(typeName), where a \(expected) was expected")
            }
        }
        // Unowned and unchecked: the reader decodes one object of this
        // connection, and every such object holds the connection strongly.
        let reader = StateReader(bytes: body, resolve: { [unowned(unsafe) self] target, typeName, declared in
            try objects.object(for: target) { makeGhost(target, type: try ghostType(named: typeName, declared: declared)) }
        })
        let end: Int
        do {
            end = try reader.validate()
        } catch {
            throw DurusError.badState(oid: oid, reason: error.description)
        }
        guard end == body.count else {
            throw DurusError.badState(oid: oid, reason: "\(body.count - end) bytes follow the state")
        }
        if record.data.first == PickleOpcode.proto { object.noteLoadedPythonClass(name) }
        do {
            try object.decodeState(PersistentStateDecoder(reader: reader))
        } catch DurusError.badState(_, let reason) {
            // The decoder knows the state, not whose it is.
            object.clearState()
            throw DurusError.badState(oid: oid, reason: reason)
        } catch let error as DurusError {
            object.clearState()
            throw error
        } catch {
            object.clearState()
            throw DurusError.badState(oid: oid, reason: "\(error)")
        }
        object.status = .saved
        object.serial = serial
        if !released { resident.insert(object) }
        loadCount += 1
    }

    /// A ghost of this connection for `oid`, not yet in the identity map.
    private func makeGhost(_ oid: OID, type: PersistentObject.Type) -> PersistentObject {
        let ghost = type.init(ghost: GhostMarker())
        ghost.oid = oid
        ghost.core = self
        return ghost
    }

    /// The type a stored name stands for: one met before, a registered one,
    /// or else `declared` (the type the referring state declares) when that
    /// is its name: a generic specialization such as `PersistentList<Account>`
    /// loads without ever having been registered. The last one found is kept
    /// by its bytes: a state's references mostly name one type, found without
    /// a String.
    /// A Python Durus record's class (`module.Name`, UTF-8) and its state in
    /// the state codec's form (see `PythonState`).
    private static func pythonState(_ record: Record) throws -> (name: ArraySlice<UInt8>, body: [UInt8]) {
        let pickled: PickleRecord
        do {
            pickled = try PickleRecord(data: record.data, oid: record.oid)
        } catch {
            throw DurusError.badState(oid: record.oid, reason: error.description)
        }
        return (Array(pickled.classGlobal.description.utf8)[...], try PythonState.stateBytes(pickled.state, oid: record.oid))
    }

    private func ghostType(named name: ArraySlice<UInt8>, declared: PersistentObject.Type?) throws -> PersistentObject.Type {
        // A Python class may map to several specializations of one generic
        // Swift type (a `DurusPersistentDict<String, Int>` here, of `Account`
        // there): the one the reference declares.
        if let declared, declared.mapsPythonClass(name) { return declared }
        if let last = lastGhostType, sameBytes(last.name, name) { return last.type }
        let typeName = String(decoding: name, as: UTF8.self)
        guard let type = types[typeName] ?? PersistentTypes.type(named: typeName)
                ?? declared.flatMap({ PersistentTypes.isName(typeName, of: $0) ? $0 : nil }) else {
            throw DurusError.unknownType(typeName)
        }
        types[typeName] = type
        lastGhostType = (Array(name), type)
        return type
    }

    private func ghostify(_ object: PersistentObject) {
        guard object.oid != nil else { return }
        object.clearState()
        object.status = .ghost
        resident.remove(object)
    }

    /// Applies what others committed (and garbage collected): cached copies become ghosts.
    private func synchronize() throws {
        let oids = withLostInvalidations(try storage.sync())
        invalid.formUnion(oids)
        for oid in invalid {
            if let object = objects[oid] { ghostify(object) }
        }
        invalid.removeAll()
    }

    /// `oids`, and every object held here when the storage lost track of
    /// others' commits since the last look (``Storage/sessionGeneration``
    /// changed): any of them may have changed meanwhile. OIDs taken for new
    /// objects are dropped: the session that handed them out is gone.
    private func withLostInvalidations(_ oids: [OID]) -> [OID] {
        let now = storage.sessionGeneration
        guard now != generation else { return oids }
        generation = now
        freshOIDs.removeAll()
        return oids + resident.objects.compactMap(\.oid)
    }

    /// Objects accessed in this transaction conflict; others become ghosts.
    private func handleInvalidations(_ oids: [OID], readOID: OID?) throws {
        var conflicts: [OID] = []
        for oid in withLostInvalidations(oids) {
            guard let object = objects[oid] else { continue }
            if object.serial == serial {
                conflicts.append(oid)
                invalid.insert(oid)
            } else if object.status != .ghost {
                ghostify(object)
            }
        }
        guard conflicts.isEmpty else {
            if let readOID { throw ConflictError(.read, oids: [readOID]) }
            throw ConflictError(.write, oids: conflicts.sorted())
        }
    }
}

@available(*, unavailable)
extension Connection: Sendable {}

/// An object's state as a commit encoded it, before it becomes a record.
private struct EncodedState: Sendable {
    let oid: OID
    let type: PersistentObject.Type
    /// Looked up while encoding, so compressing lanes never meet on the registry's lock.
    let typeName: String
    let body: [UInt8]
    /// The record data of an object of a type mapped to a Python class: a Durus pickle.
    let pickled: [UInt8]?
    let references: Set<OID>
}

/// Whether two byte strings are equal, compared as memory (type names, for
/// every reference a state holds).
private func sameBytes(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
    a.count == b.count && (a.isEmpty || a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } })
}

/// Each lane of a parallel compression writes only its own slots.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
