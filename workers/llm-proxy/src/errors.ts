// Anthropic's error envelope, used for every error the proxy itself produces, so the
// official SDKs surface them like upstream errors. Messages never include secrets.
import { statusText } from "./respond.ts";

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "api_error"
  | "overloaded_error";

/** The envelope; `request_id` as Anthropic's own error bodies carry it (the SDK's
 *  `ErrorResponse` type: `request_id: string | null`), so a tenant can quote it. */
export function errorBody(type: ErrorType, message: string, requestId?: string): string {
  return JSON.stringify(requestId === undefined ? { type: "error", error: { type, message } } : { type: "error", error: { type, message }, request_id: requestId });
}

export function errorResponse(
  status: number,
  type: ErrorType,
  message: string,
  requestId: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(errorBody(type, message, requestId), {
    status,
    statusText: statusText(status),
    headers: { "content-type": "application/json", "request-id": requestId, ...headers },
  });
}

/** An SSE error event, sent when a stream breaks after bytes reached the client. */
export function sseErrorEvent(type: ErrorType, message: string): string {
  return `event: error\ndata: ${errorBody(type, message)}\n\n`;
}
