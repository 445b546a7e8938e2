const mean = (xs) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
