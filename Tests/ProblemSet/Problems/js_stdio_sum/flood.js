const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\s+/).map(Number);
if (a === 10) for (let k = 0; k < 20; k++) console.log('spam'.repeat(25000));
console.log(a + b);
