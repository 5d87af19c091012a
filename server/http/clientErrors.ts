// Requests Node's HTTP parser refuses before Express sees them (a request line or headers over
// 16 KiB, malformed HTTP) get the API's error body too, instead of Node's bare status line.
import { randomUUID } from "node:crypto";
import { STATUS_CODES, type Server } from "node:http";
import type { Duplex } from "node:stream";

export function answerClientErrors(server: Server): void {
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, message] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "HEADERS_TOO_LARGE", "The request line and headers are larger than 16 KiB."]
        : [400, "MALFORMED_REQUEST", "The request is not valid HTTP."];
    const body = JSON.stringify({ error: { code, message, request_id: randomUUID() } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
