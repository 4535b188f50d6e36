/** A tiny typed event emitter: on() returns an unsubscribe function; listener exceptions go to onListenerError. */
export type Listener<T> = (payload: T) => void;

export class Emitter<M extends { [K in keyof M]: unknown }> {
  private map = new Map<keyof M, Set<Listener<never>>>();
  constructor(private onListenerError?: (e: unknown) => void) {}

  on<K extends keyof M>(name: K, fn: Listener<M[K]>): () => void {
    let set = this.map.get(name);
    if (!set) this.map.set(name, (set = new Set()));
    const wrapped = fn as Listener<never>;
    set.add(wrapped);
    return () => { set!.delete(wrapped); };
  }

  once<K extends keyof M>(name: K, fn: Listener<M[K]>): () => void {
    const off = this.on(name, (p) => { off(); fn(p); });
    return off;
  }

  emit<K extends keyof M>(name: K, payload: M[K]): void {
    const set = this.map.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try { (fn as Listener<M[K]>)(payload); } catch (e) {
        if (this.onListenerError) this.onListenerError(e); else queueMicrotask(() => { throw e; });
      }
    }
  }

  listenerCount(name?: keyof M): number {
    if (name !== undefined) return this.map.get(name)?.size ?? 0;
    let n = 0; for (const s of this.map.values()) n += s.size; return n;
  }

  clear(): void { this.map.clear(); }
}

/** An observable value for useSyncExternalStore: getSnapshot() is referentially stable between changes. */
export class Store<T> {
  private listeners = new Set<() => void>();
  constructor(private value: T) {}
  getSnapshot = (): T => this.value;
  watch = (fn: () => void): (() => void) => { this.listeners.add(fn); return () => { this.listeners.delete(fn); }; };
  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const fn of [...this.listeners]) { try { fn(); } catch (e) { queueMicrotask(() => { throw e; }); } }
  }
  update(fn: (v: T) => T): void { this.set(fn(this.value)); }
  get watcherCount(): number { return this.listeners.size; }
}
