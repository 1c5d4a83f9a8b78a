// Clerk's proxy setup: the browser reaches the Frontend API through this app's own origin, at
// /__clerk/* (NEXT_PUBLIC_CLERK_PROXY_URL), which Next.js forwards to signin-links
// (CLERK_FRONTEND_API_URL, read at build time). The Frontend API's cookies then land on the app's host.
const frontendApi = process.env.CLERK_FRONTEND_API_URL
if (!frontendApi) {
  throw new Error('CLERK_FRONTEND_API_URL must name the signin-links stack (make local prints it)')
}

/** @type {import('next').NextConfig} */
const nextConfig = {
  async rewrites() {
    return [{ source: '/__clerk/:path*', destination: `${frontendApi.replace(/\/$/, '')}/:path*` }]
  },
}

export default nextConfig
