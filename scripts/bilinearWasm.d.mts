export declare const watPath: string;
export declare const generatedPath: string;
export declare function bilinearWasmSource(): Promise<string>;
export declare function writeBilinearWasm(): Promise<boolean>;
