function make(kind) {
  if (kind === 'set') return new Promise(() => {});
  return null;
}
