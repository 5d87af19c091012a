// Request-scoped values live in AsyncLocalStorage, set by the first middleware; the logger
// and the tenant-context helper read them from here, not from `req`.
import { AsyncLocalStorage } from "node:async_hooks";

export type RequestState = {
  requestId: string;
  userId?: string;
  /** Tenant names the request carried (X-Tenant-Id, subdomain, path), in that order. */
  tenantRefs: string[];
  /** The tenant a scoped token is limited to. */
  tokenTenantId?: string;
  /** Set once the database opened the context. */
  tenantId?: string;
  role?: string;
  /** The permission the route needs (authorize.ts), and whether the route names one row. */
  permission?: { name: string; forRow: boolean };
};

const storage = new AsyncLocalStorage<RequestState>();

export function runWithRequestState<T>(state: RequestState, fn: () => T): T {
  return storage.run(state, fn);
}

export function requestState(): RequestState | undefined {
  return storage.getStore();
}
