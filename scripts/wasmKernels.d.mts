export interface WasmKernel {
  wat: string;
  generated: string;
  name: string;
}
export declare const kernels: WasmKernel[];
export declare function kernelSource(kernel: WasmKernel): Promise<string>;
export declare function writeWasmKernels(): Promise<string[]>;
