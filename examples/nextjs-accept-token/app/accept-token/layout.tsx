// The guide's page reads useSearchParams() outside a Suspense boundary, which `next build` refuses
// for a page it prerenders. This layout gives it one, so page.tsx stays the guide's, byte for byte.
import { Suspense, type ReactNode } from 'react'

export default function AcceptTokenLayout({ children }: { children: ReactNode }) {
  return <Suspense>{children}</Suspense>
}
