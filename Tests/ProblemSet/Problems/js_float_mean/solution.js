const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
