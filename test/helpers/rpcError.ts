import assert from "node:assert/strict";
import type { ErrorInfo } from "../../sidecar/src/protocol";

/** The JSON-RPC error a request must fail with (its code, message and the engine's coded data). */
export async function rpcError(promise: Promise<unknown>): Promise<{ code: number; message: string; data?: ErrorInfo }> {
  try {
    await promise;
  } catch (error) {
    return error as { code: number; message: string; data?: ErrorInfo };
  }
  assert.fail("the request was expected to fail");
}
