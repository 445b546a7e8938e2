async function later() { return 42; }
function make(kind) {
  switch (kind) {
    case 'map': return new Map([['b', 2], ['a', 1]]);
    case 'set': return new Set([1, 2, 3]);
    case 'undef': return undefined;
    case 'nan': return NaN;
    case 'negzero': return -0;
    case 'obj': return { a: 'x', b: [1, 2] };
    case 'async': return later();
  }
}
