export declare const schemaPath: string;
export declare const validatorPath: string;
export declare function manifestValidatorSource(): string;
export declare function writeManifestValidator(): boolean;
