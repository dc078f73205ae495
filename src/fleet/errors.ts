// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server's typed errors. Each names the entity it is about (a host,
 * a rollout, a bundle, a token, a key) and maps to one HTTP status; the reply
 * body is `{ error: { code, message, entity } }` (ErrorBody in protocol.ts).
 * The admin CLI turns a reply back into a SutureError of the matching kind.
 */
import type { ErrorKind } from '../util/errors.js';

export type FleetErrorCode =
  | 'bad-request' // 400: the body or parameters fail the schema
  | 'unauthenticated' // 401: no signature, a bad one, an unknown key, a stale time, a replayed nonce
  | 'forbidden' // 403: authenticated, but not allowed (a host on an admin route, a bundle for another build)
  | 'not-found' // 404
  | 'conflict' // 409: the state forbids it (a used token, a rollout already finished, a duplicate)
  | 'too-large' // 413
  | 'invalid-bundle' // 422: a bundle the server refuses to distribute (malformed, tampered)
  | 'unavailable'; // 503: the database is away

export interface Entity {
  type: 'host' | 'admin' | 'key' | 'token' | 'bundle' | 'rollout' | 'request' | 'channel' | 'database';
  id: string;
}

export const HTTP_STATUS: Record<FleetErrorCode, number> = {
  'bad-request': 400,
  unauthenticated: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'too-large': 413,
  'invalid-bundle': 422,
  unavailable: 503,
};

export class FleetError extends Error {
  constructor(
    readonly code: FleetErrorCode,
    message: string,
    readonly entity: Entity,
  ) {
    super(message);
    this.name = 'FleetError';
  }

  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

/** The CLI's error kind (and so exit code) for a server's error code. */
export function kindForCode(code: string): ErrorKind {
  switch (code) {
    case 'bad-request':
    case 'too-large':
      return 'usage';
    case 'unauthenticated':
    case 'forbidden':
    case 'invalid-bundle':
      return 'untrusted';
    case 'not-found':
      return 'not-found';
    case 'conflict':
      return 'conflict';
    default:
      return 'environment';
  }
}
