// Types of manifestValidator.generated.js (ajv's standalone code for schemas/ood-pair.schema.json).
import type { ErrorObject } from 'ajv';

declare function validate(data: unknown): boolean;
declare namespace validate {
  let errors: ErrorObject[] | null | undefined;
}
export default validate;
