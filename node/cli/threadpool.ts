/**
 * Imported first by the entry: libuv's thread pool (file reads and writes,
 * zlib, hashing off the main thread) has 4 threads unless told otherwise
 * before its first use, and a migration keeps more than 4 chunk reads and
 * writes in flight.
 */
process.env.UV_THREADPOOL_SIZE ??= '16'
