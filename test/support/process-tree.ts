// What a running service holds, read from /proc: the resident memory and the
// open file descriptors of a process and its children (the --workers
// processes). Linux only; a process that exits between two reads is skipped.

import { readdir, readFile } from "node:fs/promises";

/** The process and its direct children (node:cluster workers are children of the primary). */
export async function processTree(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Fields after the command name, which may hold spaces and parentheses: state, ppid, ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return [pid, ...children];
}

export interface TreeUsage {
  /** Processes read (the primary and its workers). */
  readonly processes: number;
  /** Sum of VmRSS over the tree, in bytes. */
  readonly rssBytes: number;
  /** Sum of the entries of /proc/<pid>/fd over the tree. */
  readonly fds: number;
}

/** RSS and open descriptors of `pid` and its children, summed. */
export async function treeUsage(pid: number): Promise<TreeUsage> {
  let processes = 0;
  let rssBytes = 0;
  let fds = 0;
  for (const p of await processTree(pid)) {
    try {
      const status = await readFile(`/proc/${p}/status`, "utf8");
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      const open = await readdir(`/proc/${p}/fd`);
      rssBytes += kb === undefined ? 0 : Number(kb) * 1024;
      fds += open.length;
      processes++;
    } catch {
      // gone meanwhile
    }
  }
  return { processes, rssBytes, fds };
}
