// Anthropic's error envelope, used for every error the proxy itself produces, so the
// official SDKs surface them like upstream errors. Messages never include secrets.
import { statusText } from "./respond.ts";

/** Anthropic's error types (the Messages API's error envelope). */
const ERROR_TYPES = ["invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error", "request_too_large", "rate_limit_error", "api_error", "overloaded_error"] as const;

export type ErrorType = (typeof ERROR_TYPES)[number];

/** An upstream's error type as this proxy answers it: one of Anthropic's, else
 *  invalid_request_error (a refused request). */
export function errorTypeOf(t: string): ErrorType {
  return (ERROR_TYPES as readonly string[]).includes(t) ? (t as ErrorType) : "invalid_request_error";
}

/** The envelope; `request_id` as Anthropic's own error bodies carry it (the SDK's
 *  `ErrorResponse` type: `request_id: string | null`), so a tenant can quote it.
 *  `details.error_code` is where Anthropic puts a finer code (the official SDK reads it
 *  into `APIError.errorCode`: @anthropic-ai/sdk core/error.js). */
export function errorBody(type: ErrorType, message: string, requestId?: string, details?: { error_code: string }): string {
  const error = { type, message, ...(details !== undefined ? { details } : {}) };
  return JSON.stringify(requestId === undefined ? { type: "error", error } : { type: "error", error, request_id: requestId });
}

export function errorResponse(
  status: number,
  type: ErrorType,
  message: string,
  requestId: string,
  headers: Record<string, string> = {},
  details?: { error_code: string },
): Response {
  return new Response(errorBody(type, message, requestId, details), {
    status,
    statusText: statusText(status),
    headers: { "content-type": "application/json", "request-id": requestId, ...headers },
  });
}

/** An SSE error event, sent when a stream breaks after bytes reached the client; with the
 *  call's request id like the proxy's other errors (the SDK also has it from the stream's
 *  `request-id` header: @anthropic-ai/sdk core/streaming.js builds the APIError from it). */
export function sseErrorEvent(type: ErrorType, message: string, requestId?: string): string {
  return `event: error\ndata: ${errorBody(type, message, requestId)}\n\n`;
}
