"""Checker for "split": accepts any two positive integers that add up to n.

Run as `python3 checker.py INPUT OUTPUT ANSWER` (testlib order). Exit 0 accepts, 1 rejects;
the first line of stdout is the message. ANSWER holds one reference split (unused beyond a
sanity check, since every correct split is accepted).
"""
import sys


def main() -> int:
    input_path, output_path, answer_path = sys.argv[1:4]
    n = int(open(input_path).read().split()[0])
    reference = [int(t) for t in open(answer_path).read().split()]
    if sum(reference) != n:
        print(f"bad reference answer {reference} for n={n}")
        return 3
    tokens = open(output_path).read().split()
    if len(tokens) != 2:
        print(f"expected 2 numbers, got {len(tokens)}")
        return 1
    try:
        a, b = int(tokens[0]), int(tokens[1])
    except ValueError:
        print(f"not integers: {tokens[0]!r} {tokens[1]!r}")
        return 1
    if a <= 0 or b <= 0:
        print(f"{a} and {b} must both be positive")
        return 1
    if a + b != n:
        print(f"{a} + {b} = {a + b}, not {n}")
        return 1
    print(f"ok {a} + {b} = {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
