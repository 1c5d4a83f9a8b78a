// Serve clerk-js and @clerk/ui from this app (NEXT_PUBLIC_CLERK_JS_URL, NEXT_PUBLIC_CLERK_UI_URL)
// instead of a CDN: the versions are the ones package.json pins, and the build needs no network.
import { cpSync, rmSync } from 'node:fs'

for (const [name, target] of [
  ['@clerk/clerk-js', 'public/clerk-js'],
  ['@clerk/ui', 'public/clerk-ui'],
]) {
  const dist = `node_modules/${name}/dist` // the packages' exports do not include dist/
  rmSync(target, { recursive: true, force: true })
  cpSync(dist, target, { recursive: true })
}
