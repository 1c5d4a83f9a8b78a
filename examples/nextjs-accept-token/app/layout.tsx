// The root layout of Clerk's Next.js quickstart: ClerkProvider around the app. Every setting comes
// from the environment (.env.example): the publishable key, the proxy URL and where clerk-js and
// @clerk/ui are served from (this app's own public/, copied from node_modules at build time).
import { ClerkProvider } from '@clerk/nextjs'
import type { ReactNode } from 'react'

export const metadata = { title: 'signin-links: accept a sign-in token' }

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <ClerkProvider>
      <html lang="en">
        <body>{children}</body>
      </html>
    </ClerkProvider>
  )
}
