const readline = require('readline');
const rl = readline.createInterface({ input: process.stdin });
const lines = [];
rl.on('line', (l) => lines.push(l));
rl.on('close', () => {
  const [a, b] = lines[0].split(' ').map(Number);
  process.stdout.write(String(a + b) + '\n');
});
