function make(kind) {
  switch (kind) {
    case 'map': return { a: 1 };
    case 'set': return [1, 2, 3, 3];
    case 'undef': return 0;
    case 'nan': return Infinity;
    case 'negzero': return 1;
    case 'obj': return { a: 'x', b: [1, 3] };
    case 'async': return Promise.resolve(41);
  }
}
