// Structured logs: one JSON object per line on stderr, with a level, a time, a
// message and fields. Debug lines (one per decision) are built only when the
// level lets them through.

export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  readonly level: LogLevel;
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function isLogLevel(value: string): value is LogLevel {
  return Object.hasOwn(ORDER, value);
}

export function createLogger(level: LogLevel = "info", write: (line: string) => void = (l) => process.stderr.write(l), base: Record<string, unknown> = {}): Logger {
  const threshold = ORDER[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < threshold) return;
    const time = new Date().toISOString();
    let line: string;
    try {
      line = JSON.stringify({ time, level: lvl, msg, ...base, ...fields }, errorReplacer);
    } catch (err) {
      // A field JSON cannot write (a cycle, a throwing getter): the line is kept, without the fields. A logger never throws into its caller.
      line = JSON.stringify({ time, level: lvl, msg, ...base, log_fields_error: err instanceof Error ? err.message : "unwritable fields" });
    }
    write(`${line}\n`);
  };
  return {
    level,
    enabled: (lvl) => ORDER[lvl] >= threshold,
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}

export const silentLogger: Logger = createLogger("error", () => undefined);
