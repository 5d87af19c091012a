// The response-validation hook of the fixtures' request helper: every answer a test receives is
// checked against the OpenAPI document for its route and status, so the document cannot drift
// from what the API does. An undocumented route or status fails the test that met it.
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

type Response = { content?: Record<string, unknown>; $ref?: string };
type Operation = { responses: Record<string, Response> };
type Document = { paths: Record<string, Record<string, Operation>>; components?: { responses?: Record<string, Response> } };

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

export function responseValidator(document: Document) {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  addFormats.default(ajv);
  ajv.addSchema(document, "openapi");
  const compiled = new Map<string, ValidateFunction>();
  const schemaAt = (ref: string) => {
    let v = compiled.get(ref);
    if (!v) compiled.set(ref, (v = ajv.compile({ $ref: `openapi#/${ref}` })));
    return v;
  };
  const templates = Object.keys(document.paths)
    .map((t) => ({ t, params: (t.match(/\{/g) ?? []).length, re: new RegExp(`^${t.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+")}$`) }))
    .sort((a, b) => a.params - b.params);
  const errorRef = pointer("components", "schemas", "Error");

  return function check(method: string, url: string, status: number, contentType: string | null, body: unknown): void {
    // Express routes are not strict: "/api/v1/services/" is "/api/v1/services".
    const path = url.split("?")[0].replace(/(.)\/$/, "$1");
    const template = templates.find((x) => x.re.test(path))?.t;
    const op = template ? document.paths[template][method.toLowerCase()] : undefined;
    const fail = (why: string) => {
      throw new Error(`response contract: ${method} ${url} answered ${status}: ${why}`);
    };
    if (!op) {
      if (status < 400) fail("the route is not in the OpenAPI document");
      if (!schemaAt(errorRef)(body)) fail(`not the error shape: ${JSON.stringify(body).slice(0, 300)}`);
      return;
    }
    const key = [String(status), `${String(status)[0]}XX`, "default"].find((k) => op.responses[k]);
    if (!key) return fail(`status ${status} is not documented for ${method} ${template}`);
    // A response is written in place or shared as a component ($ref): its schema's pointer follows it.
    const at = op.responses[key].$ref?.replace(/^#\//, "").split("/") ?? ["paths", template!, method.toLowerCase(), "responses", key];
    const response = at.reduce<unknown>((node, part) => (node as Record<string, unknown>)?.[part], document) as Response | undefined;
    if (!response) return fail(`response ${key} of ${method} ${template} points nowhere`);
    const content = response.content;
    if (!content) {
      if (body !== undefined && body !== "") fail("documented without a body, but has one");
      return;
    }
    const media = Object.keys(content)[0];
    if (!contentType?.startsWith(media)) {
      // Reports answer CSV as well as JSON (content negotiation); anything else must match.
      if (!(contentType?.startsWith("text/csv") && template?.includes("/reports/"))) fail(`content-type ${contentType}, documented ${media}`);
      return;
    }
    if (media !== "application/json") return;
    const validate = schemaAt(pointer(...at, "content", media, "schema"));
    if (!validate(body)) fail(`${ajv.errorsText(validate.errors)}; body ${JSON.stringify(body).slice(0, 300)}`);
  };
}
