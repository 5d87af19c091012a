// Request validation with ajv. Bodies: unknown properties are rejected (422), never stripped,
// so a body carrying tenant_id is refused rather than silently ignored. Path ids and query
// strings that cannot be parsed are malformed input (400).
import { Ajv, type ErrorObject, type JSONSchemaType, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { BadRequestError, ValidationError } from "../core/errors.ts";
import { isUuid } from "../core/ids.ts";

// multipleOf on decimals (a quantity's 0.01) compares with a tolerance: 0.29 / 0.01 is
// 28.999999999999996 in binary floating point, and must still count as two decimals.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, coerceTypes: false, multipleOfPrecision: 9 });
addFormats.default(ajv, ["email", "uuid", "date-time", "date"]);
const queryAjv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, coerceTypes: true, useDefaults: true });
addFormats.default(queryAjv, ["email", "uuid", "date-time", "date"]);

function describe(errors: ErrorObject[] | null | undefined) {
  return (errors ?? []).map((e) => ({
    field: e.keyword === "additionalProperties" ? `${e.instancePath}/${e.params.additionalProperty}` : e.instancePath || "/",
    message: e.keyword === "additionalProperties" ? "is not an allowed property" : e.message ?? "is invalid",
  }));
}

// PostgreSQL text cannot hold NUL, and a lone UTF-16 surrogate has no UTF-8 form (Node would
// silently store U+FFFD instead): both are refused here, before any schema or SQL sees them.
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const unsafeText = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const unsafeTextMessage = "holds a NUL character or a lone UTF-16 surrogate";

/** JSON pointers of every string (or property name) in `value` that PostgreSQL cannot store as text. Iterative: deep JSON cannot overflow the stack. */
export function unsafeStrings(value: unknown): string[] {
  const found: string[] = [];
  const stack: [unknown, string][] = [[value, ""]];
  while (stack.length > 0 && found.length < 20) {
    const [v, at] = stack.pop()!;
    if (typeof v === "string") {
      if (unsafeText.test(v)) found.push(at || "/");
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        const pointer = `${at}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`;
        if (unsafeText.test(k)) found.push(pointer);
        stack.push([child, pointer]);
      }
    }
  }
  return found;
}

const unsafeDetails = (pointers: string[]) => pointers.map((field) => ({ field, message: unsafeTextMessage }));

/** Compiles a body schema; the returned function narrows or throws 422 VALIDATION_FAILED. */
export function bodyValidator<T>(schema: JSONSchemaType<T> | object): (body: unknown) => T {
  const check = ajv.compile(schema) as ValidateFunction<T>;
  return (body) => {
    if (body === undefined) throw new BadRequestError("BODY_REQUIRED", "A JSON body is required.");
    const unsafe = unsafeStrings(body);
    if (unsafe.length > 0) throw new ValidationError("VALIDATION_FAILED", "The request body is invalid.", { details: unsafeDetails(unsafe) });
    if (!check(body)) {
      throw new ValidationError("VALIDATION_FAILED", "The request body is invalid.", { details: describe(check.errors) });
    }
    return body;
  };
}

/** Compiles a query-string schema (values coerced, defaults applied) that throws 400. */
export function queryValidator<T>(schema: object): (query: unknown) => T {
  const check = queryAjv.compile(schema);
  return (query) => {
    const copy = { ...(query as object) };
    const unsafe = unsafeStrings(copy);
    if (unsafe.length > 0) throw new BadRequestError("INVALID_PARAMETER", "A query parameter is invalid.", { details: unsafeDetails(unsafe) });
    if (!check(copy)) {
      throw new BadRequestError("INVALID_PARAMETER", "A query parameter is invalid.", { details: describe(check.errors) });
    }
    return copy as T;
  };
}

/** A path id must be a uuid: anything else is malformed input (400 INVALID_ID). */
export function parseId(value: unknown): string {
  if (!isUuid(value)) throw new BadRequestError("INVALID_ID", "The id in the path is not a valid uuid.");
  return value.toLowerCase();
}
