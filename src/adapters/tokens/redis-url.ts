// The shared replay store's address (SPEC 5, --replay-store):
// redis://[user[:password]@]host[:port][/db], or rediss:// for TLS. Parsed
// here, without loading the Redis client, so that --config and flag errors
// name the problem before anything connects.

export interface RedisAddress {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** The URL with any password masked: what logs and the ready line may show. */
  readonly display: string;
}

export type RedisUrlResult = { readonly ok: true; readonly address: RedisAddress } | { readonly ok: false; readonly problem: string };

const DEFAULT_PORT = 6379;
const MAX_DB = 9_999;

export function parseRedisUrl(value: string): RedisUrlResult {
  const fail = (problem: string): RedisUrlResult => ({ ok: false, problem });
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail("is not a URL (expected redis://host:port[/db] or rediss://host:port[/db])");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") return fail(`has the scheme "${url.protocol.slice(0, -1)}"; only redis:// and rediss:// (TLS) are supported`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host.length === 0) return fail("names no host");
  if (url.search.length > 0 || url.hash.length > 0) return fail("takes no query string or fragment: the time-out is replay.timeout in --config");
  const port = url.port === "" ? DEFAULT_PORT : Number(url.port);
  const path = url.pathname;
  let db = 0;
  if (path !== "" && path !== "/") {
    const m = /^\/(\d{1,4})$/.exec(path);
    if (m === null || Number(m[1]) > MAX_DB) return fail(`has the path ${JSON.stringify(path)}; the path is a database number, e.g. /0`);
    db = Number(m[1]);
  }
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = url.username === "" ? undefined : decodeURIComponent(url.username);
    password = url.password === "" ? undefined : decodeURIComponent(url.password);
  } catch {
    return fail("has a user name or password that is not valid percent-encoding");
  }
  const auth = username === undefined && password === undefined ? "" : `${username ?? ""}${password === undefined ? "" : ":***"}@`;
  const display = `${url.protocol}//${auth}${url.hostname}:${port}/${db}`;
  return { ok: true, address: { tls: url.protocol === "rediss:", host, port, db, username, password, display } };
}
