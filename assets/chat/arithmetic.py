"""Multi-step arithmetic with worked solutions: the task on which more thinking should buy more accuracy.

Two kinds of problem, each solved one step at a time in the reasoning trace, so the number of steps a
problem needs (`n_steps`) is known exactly:

- "chain": a chain of + and - on one-digit operands, e.g. `compute 5 + 3 - 2 + 7`, solved left to right
  with a running total (`5 + 3 = 8 , 8 - 2 = 6 , 6 + 7 = 13`); n_steps = number of operations. Running
  totals stay in [0, 99] so every number is one word.
- "sum": a multi-digit sum written digit by digit, e.g. `add 3 4 7 + 5 8 9`, solved column by column from
  the right with carries (`7 + 9 + 0 = 16 write 6 carry 1 , ...`); the answer is the digits of the sum,
  spaced (`9 3 6`); n_steps = number of digit columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.chat.task_table import draw_distinct, split_problems, task_row

TASK = "arithmetic"
MAX_TOTAL = 99


@dataclass(frozen=True)
class ArithmeticSpec:
    """Which problems the arithmetic world draws.

    chain_ops: (fewest, most) operations in a chain; sum_digits: (fewest, most) digits per operand of a sum.
    sum_share: fraction of problems that are sums (the rest are chains). Lengths are uniform in their range.
    """

    seed: int = 0
    chain_ops: tuple[int, int] = (1, 6)
    sum_digits: tuple[int, int] = (1, 4)
    sum_share: float = 0.5
    n_train: int = 2000
    n_validation: int = 200
    n_test: int = 200

    def __post_init__(self) -> None:
        for name, low in (("chain_ops", 1), ("sum_digits", 1)):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if (
                len(value) != 2
                or not all(isinstance(v, int) and v >= low for v in value)
                or value[0] > value[1]
            ):
                raise ValueError(
                    f"ArithmeticSpec.{name} must be [fewest, most] integers >= {low} with "
                    f"fewest <= most, got {list(value)!r}"
                )
        if not 0.0 <= self.sum_share <= 1.0:
            raise ValueError(f"ArithmeticSpec.sum_share must be in [0, 1], got {self.sum_share!r}")


def chain_problem(rng: np.random.Generator, n_ops: int) -> dict:
    """A chain of `n_ops` + / - operations on operands 1..9, solved with a running total."""
    total = int(rng.integers(1, 10))
    prompt, steps = [str(total)], []
    for _ in range(n_ops):
        operand = int(rng.integers(1, 10))
        # Subtract only when the total stays >= 0; add only when it stays <= MAX_TOTAL.
        can_subtract, can_add = total - operand >= 0, total + operand <= MAX_TOTAL
        op = "-" if can_subtract and (not can_add or rng.random() < 0.5) else "+"
        new_total = total - operand if op == "-" else total + operand
        prompt += [op, str(operand)]
        steps.append(f"{total} {op} {operand} = {new_total}")
        total = new_total
    return task_row(TASK, "chain", "compute " + " ".join(prompt), " , ".join(steps), str(total), n_ops)


def sum_problem(rng: np.random.Generator, n_digits: int) -> dict:
    """The sum of two `n_digits`-digit numbers, written and solved digit by digit with carries."""
    low = 10 ** (n_digits - 1) if n_digits > 1 else 0
    a, b = (int(rng.integers(low, 10**n_digits)) for _ in range(2))
    da, db = str(a).zfill(n_digits), str(b).zfill(n_digits)
    carry, steps, digits = 0, [], []
    for x, y in zip(reversed(da), reversed(db), strict=True):
        column = int(x) + int(y) + carry
        steps.append(f"{x} + {y} + {carry} = {column} write {column % 10} carry {column // 10}")
        digits.append(str(column % 10))
        carry = column // 10
    if carry:
        digits.append(str(carry))
    prompt = f"add {' '.join(da)} + {' '.join(db)}"
    return task_row(TASK, "sum", prompt, " , ".join(steps), " ".join(reversed(digits)), n_digits)


def arithmetic_problems(spec: ArithmeticSpec) -> pd.DataFrame:
    """The arithmetic world's train/validation/test problems (TASK_COLUMNS), distinct across splits."""
    rng = np.random.default_rng([spec.seed, 18, 1])

    def draw() -> dict:
        if rng.random() < spec.sum_share:
            return sum_problem(rng, int(rng.integers(spec.sum_digits[0], spec.sum_digits[1] + 1)))
        return chain_problem(rng, int(rng.integers(spec.chain_ops[0], spec.chain_ops[1] + 1)))

    wanted = spec.n_train + spec.n_validation + spec.n_test
    return split_problems(TASK, draw_distinct(draw, wanted), spec.n_train, spec.n_validation, spec.n_test)


def check_arithmetic(row: dict | pd.Series, answer: str) -> bool:
    """True when `answer` is the reference number; spaces between digits do not matter ("9 3 6" == "936")."""
    given = "".join(str(answer).split())
    return bool(given) and given == "".join(str(row["answer"]).split())
