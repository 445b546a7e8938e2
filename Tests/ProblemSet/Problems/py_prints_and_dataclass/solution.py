from __future__ import annotations
from dataclasses import dataclass
import math

@dataclass(frozen=True)
class P:
    x: float
    y: float

class Solution:
    def dist(self, a, b) -> float:
        print("debug:", a, b)
        return math.dist((P(*a).x, P(*a).y), (P(*b).x, P(*b).y))
