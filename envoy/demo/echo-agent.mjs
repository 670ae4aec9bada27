// A demo agent for docker-compose.yml: answers every request with what it
// received, so you can see what the front proxy forwarded (the
// x-agent-verified-* headers hopwarden set, x-forwarded-client-cert,
// traceparent). Plain HTTP on the Compose network: only Envoy can reach it.

import { createServer } from "node:http";

const name = process.env.AGENT_NAME ?? "agent";
const port = Number(process.env.PORT ?? 8080);

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ agent: name, method: req.method, path: req.url, headers: req.headers }, null, 2) + "\n");
  });
});
server.listen(port, "0.0.0.0", () => console.log(`${name} echo agent on :${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
