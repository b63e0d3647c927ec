import CZlib

/// zlib, as Durus uses it for object state.
enum Zlib {
    /// `bytes` compressed at the default level.
    static func compress(_ bytes: [UInt8]) -> [UInt8]? {
        var length = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let code = output.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in
                CZlib.compress2(out.baseAddress, &length, input.baseAddress, uLong(input.count), Z_DEFAULT_COMPRESSION)
            }
        }
        guard code == Z_OK else { return nil }
        output.removeLast(output.count - Int(length))
        return output
    }

    /// Inflates a zlib stream of any size; nil when it is not valid zlib.
    /// `limit` bounds what a corrupt or hostile stream can make us allocate.
    static func decompress(_ bytes: ArraySlice<UInt8>, limit: Int = 256 << 20) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: max(256, bytes.count * 4))
        return bytes.withUnsafeBufferPointer { input -> [UInt8]? in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let code = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                output.append(contentsOf: chunk[..<produced])
                if output.count > limit { return nil }
                if code == Z_STREAM_END { return stream.avail_in == 0 ? output : nil }
                guard code == Z_OK, produced > 0 || stream.avail_in > 0 else { return nil }
            }
        }
    }
}
