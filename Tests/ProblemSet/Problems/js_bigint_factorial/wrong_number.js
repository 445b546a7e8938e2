function factorial(n) {
  let r = 1;
  for (let i = 2; i <= Number(n); i++) r *= i;
  return r;
}
