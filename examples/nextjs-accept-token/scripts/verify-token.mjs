// Verify a session token with Clerk's own backend SDK, as clerkMiddleware does: verifyToken fetches
// the public keys from CLERK_API_URL/v1/jwks with the secret key, then checks the RS256 signature
// and the times. Prints the claims as JSON, or the error's reason (exit 1).
//   CLERK_API_URL=http://127.0.0.1:3000 CLERK_SECRET_KEY=sk_test_... node scripts/verify-token.mjs <jwt>
import { verifyToken } from '@clerk/backend'

try {
  const claims = await verifyToken(process.argv[2], {
    secretKey: process.env.CLERK_SECRET_KEY,
    apiUrl: process.env.CLERK_API_URL,
  })
  process.stdout.write(JSON.stringify(claims) + '\n')
} catch (error) {
  process.stdout.write(JSON.stringify({ error: error.reason ?? error.message }) + '\n')
  process.exit(1)
}
