// Drives the official @clerk/backend SDK against a signin-links API, as an application would.
// Usage: CLERK_API_URL=http://127.0.0.1:3000 CLERK_SECRET_KEY=sk_... node clerk_sdk.mjs
// Prints one JSON object with what each call returned (or the error the SDK raised).
import { createClerkClient } from "@clerk/backend";

const apiUrl = process.env.CLERK_API_URL;
const secretKey = process.env.CLERK_SECRET_KEY;
if (!apiUrl || !secretKey) {
  console.error("CLERK_API_URL and CLERK_SECRET_KEY are required");
  process.exit(2);
}

function failure(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    status: error?.status ?? null,
    clerkTraceId: error?.clerkTraceId ?? null,
    errors: (error?.errors ?? []).map((e) => ({ code: e.code, message: e.message, longMessage: e.longMessage, meta: e.meta })),
  };
}

async function attempt(call) {
  try {
    const value = await call();
    return { ok: true, value: JSON.parse(JSON.stringify(value)) };
  } catch (error) {
    return { ok: false, error: failure(error) };
  }
}

const clerk = createClerkClient({ secretKey, apiUrl });
const result = {};
result.created = await attempt(() => clerk.signInTokens.createSignInToken({ userId: "user_js_sdk", expiresInSeconds: 600 }));
const id = result.created.ok ? result.created.value.id : "sit_missing";
result.revoked = await attempt(() => clerk.signInTokens.revokeSignInToken(id));
result.revokedAgain = await attempt(() => clerk.signInTokens.revokeSignInToken(id));
result.unknown = await attempt(() => clerk.signInTokens.revokeSignInToken("sit_0000000000000000000000"));
result.invalid = await attempt(() => clerk.signInTokens.createSignInToken({ userId: "user_js_sdk", expiresInSeconds: 0 }));
const wrongKey = createClerkClient({ secretKey: "sk_test_not_the_right_key_0000", apiUrl });
result.wrongKey = await attempt(() => wrongKey.signInTokens.createSignInToken({ userId: "user_js_sdk", expiresInSeconds: 600 }));
console.log(JSON.stringify(result));
