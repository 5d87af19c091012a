// The HTTP server for an Express app, whose requests and responses are born with the app's
// prototypes.
//
// Express gives each request and response the app's prototypes as it enters the app
// (Object.setPrototypeOf(req, app.request), the same for res). V8 then gives every one of those
// objects a map of its own, so property accesses to them, in Node's HTTP code and in Express,
// miss their inline caches on every request: with --log-ic, a plain Node server logs 8 misses at
// one `_header` store in 16,000 requests, the same server through Express 16,125. Node builds
// them with the constructors a server is given; built with app.request and app.response as their
// prototypes already, Express's setPrototypeOf has nothing to change (V8 returns early when the
// prototype is the one it has) and the caches hold (7 misses). The objects are what Node would
// build: its own constructors run, only the prototype is the one Express would have given.
// Measured on GET by id under load (7 interleaved rounds of 4 s): Node CPU per request 423
// against 620 µs in the API, 312 against 479 in the bench's floor, which uses it too.
import http from "node:http";
import type { Express } from "express";

// Node's IncomingMessage and ServerResponse are plain constructor functions: called on an object
// whose prototype is already the app's, they set it up as `new` would. (Reflect.construct with the
// app's prototype as new.target measured twice the cache misses of Express alone: V8 derives a
// fresh map from a new.target that is not a class.)
function bornWith(base: (this: object, ...args: never[]) => void, prototype: object): new (...args: never[]) => object {
  function construct(this: object, ...args: never[]) {
    base.apply(this, args);
  }
  construct.prototype = prototype;
  return construct as unknown as new (...args: never[]) => object;
}

export function createHttpServer(app: Express, handler: http.RequestListener = app): http.Server {
  return http.createServer({
    IncomingMessage: bornWith(http.IncomingMessage as never, app.request) as unknown as typeof http.IncomingMessage,
    ServerResponse: bornWith(http.ServerResponse as never, app.response) as unknown as typeof http.ServerResponse,
  }, handler);
}
