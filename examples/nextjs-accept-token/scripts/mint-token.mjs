// Mint a sign-in token with Clerk's own backend SDK, pointed at signin-links:
//   CLERK_API_URL=http://127.0.0.1:3000 CLERK_SECRET_KEY=sk_test_... node scripts/mint-token.mjs user_123
// Prints the sign-in token object as JSON (its `token` goes in /accept-token?token=...).
import { createClerkClient } from '@clerk/backend'

const clerk = createClerkClient({ secretKey: process.env.CLERK_SECRET_KEY, apiUrl: process.env.CLERK_API_URL })
const token = await clerk.signInTokens.createSignInToken({ userId: process.argv[2] ?? 'user_123', expiresInSeconds: 600 })
process.stdout.write(JSON.stringify({ id: token.id, token: token.token, userId: token.userId }) + '\n')
