class LRUCache {
  constructor(c) { this.m = new Map(); }
  get(k) { return this.m.has(k) ? this.m.get(k) : -1; }
  put(k, v) { this.m.set(k, v); }
}
