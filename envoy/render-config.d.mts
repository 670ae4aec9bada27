// Types for render-config.mjs (plain JavaScript so that it runs in the demo's
// init container with node alone).
export declare function renderTemplate(template: string, values: Readonly<Record<string, string | number | undefined>>): string;
export declare function templatePlaceholders(template: string): Map<string, string | undefined>;
