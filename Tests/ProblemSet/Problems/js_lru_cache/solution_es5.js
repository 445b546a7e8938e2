var LRUCache = function(capacity) { this.cap = capacity; this.m = new Map(); };
LRUCache.prototype.get = function(key) {
  if (!this.m.has(key)) return -1;
  const v = this.m.get(key); this.m.delete(key); this.m.set(key, v); return v;
};
LRUCache.prototype.put = function(key, value) {
  this.m.delete(key); this.m.set(key, value);
  if (this.m.size > this.cap) this.m.delete(this.m.keys().next().value);
};
