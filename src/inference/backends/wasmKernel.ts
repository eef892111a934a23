/**
 * The engine's WebAssembly kernels (image/bilinear.wat, features/bank.wat; assembled by scripts/wasmKernels.mjs into
 * base64 modules): instantiated synchronously on first use, one instance per thread, each with its own memory.
 */

/** A kernel's exports, its memory among them, from its base64 module (a few KB: compiled in well under a millisecond). */
export function instantiateKernel<T>(base64: string): T & { memory: WebAssembly.Memory } {
  const module = new WebAssembly.Module(Buffer.from(base64, 'base64'));
  return new WebAssembly.Instance(module).exports as unknown as T & { memory: WebAssembly.Memory };
}

/** The memory's buffer, grown (in 64 KB pages) to hold at least `bytes`. Take views after this: growing detaches the old buffer. */
export function memoryWithAtLeast(memory: WebAssembly.Memory, bytes: number): ArrayBuffer {
  const missing = bytes - memory.buffer.byteLength;
  if (missing > 0) memory.grow(Math.ceil(missing / 65536));
  return memory.buffer;
}
