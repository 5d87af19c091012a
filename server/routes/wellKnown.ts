// GET /.well-known/jwks.json: the public keys access tokens are verified with (RFC 7517), each
// named by the kid its tokens carry, so a service that verifies this API's RS256 tokens picks up
// a new key before it signs anything and keeps the old one while its tokens live
// (runbooks/key-rotation.md). HS256 keys are secret: the set is then empty.
import { Router } from "express";
import { jwks, type TokenKeys } from "../auth/tokens.ts";
import { documented, named, row } from "../http/contract.ts";

const jwk = named("JsonWebKey", row({
  kty: { const: "RSA" }, n: { type: "string", description: "Modulus (base64url)." }, e: { type: "string", description: "Exponent (base64url)." },
  kid: { type: "string", description: "The key id tokens signed with it carry in their header." }, alg: { const: "RS256" }, use: { const: "sig" },
}));
const keySet = named("JsonWebKeySet", row({ keys: { type: "array", items: jwk } }));

export function wellKnownRoutes(keys: TokenKeys): Router {
  const router = Router();
  const body = jwks(keys);
  router.get("/.well-known/jwks.json", documented({
    summary: "The public keys access tokens are verified with (JWKS)", tag: "Caller", auth: "public",
    description: "Every RS256 public key of the verification ring (JWT_PUBLIC_KEY_FILES), the signer's and those whose tokens may still be valid, each with its kid. Empty when tokens are HS256 (shared secret).",
    responses: { 200: { description: "The key set", schema: keySet } },
  }), (_req, res) => {
    res.set("Cache-Control", "public, max-age=300").json(body);
  });
  return router;
}
