// Types of @libclaps/engine. README.md is the manual.

/** An Error from the engine. */
export interface ClapsError extends Error {
  /** The claps::errc name, one per code: "invalid_count", "invalid_article", "unavailable", "store_full", ... */
  code: string;
  /** What the WebSocket protocol sends for it (claps::wire_name): "bad_request" for invalid_count, ... */
  wireName: string;
  /** "store_full" when the wire name is "unavailable" because the store is short of space. */
  reason?: string;
  /** On an error in an op's result: the result, as far as it goes. */
  result?: OpResult;
}

export interface Snapshot {
  article: string;
  total: number;
  viewers: number;
  mine: number;
  global: boolean;
}

export interface OpResult {
  user: string;
  article: string;
  opId: string | null;
  accepted: number;
  total: number;
  mine: number;
  replayed: boolean;
  durability: 'local' | 'cluster';
}

export interface ArticleUpdate {
  article: string;
  total: number;
  viewers: number;
}

export class MemoryStore {
  constructor();
  /** Commits applied so far. */
  commits(): number;
}

export interface LmdbOptions {
  mapSize?: number;
  maxMapSize?: number;
  headroom?: number;
  sync?: boolean;
  maxPurgePerCommit?: number;
  /** Commit on the store's own thread (default true); completions run on Node's loop. */
  writerThread?: boolean;
}

export class LmdbStore {
  constructor(dir: string, options?: LmdbOptions);
  /** Closes the environment. Throws (code ERR_CLAPS_STORE_IN_USE) while an Engine is open on it. */
  close(): void;
  readonly closed: boolean;
  opCount(): number;
}

export interface EngineOptions {
  tickMs?: number;
  clapCap?: number;
  opIdWindowMs?: number;
  maxOpIdsPerUser?: number;
  maxPendingOps?: number;
  maxSubscriptions?: number;
  hashSeed?: number;
  /** Called once per tick per subscriber whose articles changed. */
  onUpdate?: (subscriber: number, updates: ArticleUpdate[]) => void;
}

export interface ClapRequest {
  user: string;
  article: string;
  count?: number;
  opId?: string;
}

export interface UndoRequest {
  user: string;
  article: string;
  opId?: string;
}

export class Engine {
  constructor(store: MemoryStore | LmdbStore, options?: EngineOptions);
  clap(request: ClapRequest): Promise<OpResult>;
  undo(request: UndoRequest): Promise<OpResult>;
  subscribe(subscriber: number, user: string | null, article: string, reading?: boolean): Snapshot;
  /** Several articles, all or nothing: one snapshot each, in order. */
  subscribe(subscriber: number, user: string | null, articles: string[], reading?: boolean): Snapshot[];
  unsubscribe(subscriber: number, article: string): void;
  unsubscribeAll(subscriber: number): void;
  read(user: string | null, article: string): Snapshot;
  stats(): Record<string, number>;
  /** Resolves once every op has its result; the store may then be closed. */
  close(): Promise<void>;
  readonly closed: boolean;
}

export const version: string;
