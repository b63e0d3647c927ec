import CZlib

/// zlib, as Durus uses it for object state.
enum Zlib {
    /// `bytes` compressed at zlib's fastest level, with a window and hash
    /// table sized to the input. Object states are small and written at every
    /// commit: zlib's defaults (a 32 KiB window, a 64 Ki-entry hash table to
    /// clear, level 6) cost several times the compression itself for a state
    /// of a few kilobytes. Any inflater reads the result (the header names the
    /// window).
    static func compress(_ bytes: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        let windowBits = Swift.min(15, Swift.max(9, Int.bitWidth - (bytes.count - 1).leadingZeroBitCount))
        let memoryLevel = Swift.min(8, Swift.max(2, windowBits - 6))
        guard deflateInit2_(&stream, Z_BEST_SPEED, Z_DEFLATED, Int32(windowBits), Int32(memoryLevel), Z_DEFAULT_STRATEGY,
                            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))))
        let code = output.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard code == Z_STREAM_END else { return nil }
        output.removeLast(Int(stream.avail_out))
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
