// Drives @clerk/backend's sessions API against a signin-links API, as an application would.
// Usage: CLERK_API_URL=... CLERK_SECRET_KEY=... USER_ID=user_... node clerk_sessions.mjs
// The user must have at least two active sessions. Prints one JSON object with each call's outcome.
import { createClerkClient } from "@clerk/backend";

const { CLERK_API_URL: apiUrl, CLERK_SECRET_KEY: secretKey, USER_ID: userId } = process.env;
if (!apiUrl || !secretKey || !userId) {
  console.error("CLERK_API_URL, CLERK_SECRET_KEY and USER_ID are required");
  process.exit(2);
}

function failure(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    status: error?.status ?? null,
    errors: (error?.errors ?? []).map((e) => ({ code: e.code, message: e.message, longMessage: e.longMessage })),
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
result.list = await attempt(() => clerk.sessions.getSessionList({ userId, limit: 10 }));
const ids = result.list.ok ? result.list.value.data.map((session) => session.id) : [];
const id = ids[0] ?? "sess_missing";
result.get = await attempt(() => clerk.sessions.getSession(id));
result.token = await attempt(() => clerk.sessions.getToken(id));
result.tokenWithExpiry = await attempt(() => clerk.sessions.getToken(id, undefined, 120));
result.revoked = await attempt(() => clerk.sessions.revokeSession(id));
result.revokedAgain = await attempt(() => clerk.sessions.revokeSession(id));
result.tokenOfRevoked = await attempt(() => clerk.sessions.getToken(id));
result.activeOnly = await attempt(() => clerk.sessions.getSessionList({ userId, status: "active" }));
result.unknown = await attempt(() => clerk.sessions.getSession("sess_0000000000000000000000"));
console.log(JSON.stringify(result));
