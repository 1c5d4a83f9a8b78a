export default function Home() {
  return <div>signin-links example: open a link of the form /accept-token?token=...</div>
}
