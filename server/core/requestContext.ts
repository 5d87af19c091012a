// Request-scoped values live on the request, set by the first middleware (http/requestId.ts); the
// authenticator, the tenant resolver, the tenant-context helper and the error handler read them
// with requestState(req). Not AsyncLocalStorage: on Node 20 it installs promise hooks that run
// for every promise the process creates, measured at about 6% of a bare handler's CPU.
import type { Request } from "express";

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
  /**
   * The permission the route needs (auth/authorize.ts), whether the route names one row, whether
   * its transaction writes (a read's is read-only, and its proof opens no write), and the feature
   * the shop must be entitled to (null: none).
   */
  permission?: { name: string; forRow: boolean; writes: boolean; feature?: string | null };
  /** The route reads from the primary even where replicas serve reads (its x-consistency, http/contract.ts). */
  primary?: boolean;
};

const STATE = Symbol("rls-service-shop.request-state");

type WithState = { [STATE]?: RequestState };

export function attachRequestState(req: Request, state: RequestState): RequestState {
  (req as WithState)[STATE] = state;
  return state;
}

export function requestState(req: Request): RequestState | undefined {
  return (req as WithState)[STATE];
}

/** What a log line written during a request carries: its id, and the tenant and user once known. */
export function logBindings(req: Request): { request_id?: string; tenant_id?: string; user_id?: string } {
  const state = requestState(req);
  return { request_id: state?.requestId, tenant_id: state?.tenantId, user_id: state?.userId };
}
