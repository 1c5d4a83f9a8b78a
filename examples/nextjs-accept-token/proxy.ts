// Clerk's middleware, as in the quickstart (Next.js 16 names the file proxy.ts). It verifies the
// __session cookie against the JWKS (CLERK_API_URL/v1/jwks, with CLERK_SECRET_KEY) and, when the
// session token is missing or stale, sends the browser through the Frontend API's handshake.
import { clerkMiddleware } from '@clerk/nextjs/server'

export default clerkMiddleware()

export const config = {
  matcher: [
    // Skip Next.js internals, static files and the Frontend API proxy itself.
    '/((?!_next|__clerk|clerk-js|clerk-ui|[^?]*\\.(?:html?|css|js(?!on)|jpe?g|webp|png|gif|svg|ttf|woff2?|ico)).*)',
    '/(api|trpc)(.*)',
  ],
}
