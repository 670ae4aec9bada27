// Certificate serials compare as numbers (SPEC 3): "0A:1b", "a1B" and "00a1b"
// name the same serial. This is the one normal form both sides are put in.

const HEX_WITH_SEPARATORS = /^[0-9a-fA-F:]+$/;

export function normalizeSerial(serial: string): string | undefined {
  if (!HEX_WITH_SEPARATORS.test(serial)) return undefined;
  const hex = serial.replace(/:/g, "").toLowerCase().replace(/^0+/, "");
  if (serial.replace(/:/g, "").length === 0) return undefined;
  return hex.length === 0 ? "0" : hex;
}
