"""Mutation testing of the scoring and reward code: do the tests catch a wrong number?

A small AST mutator (no third-party tool): every mutant is one change of the kinds a scoring bug takes, written
into a copy of the repository (the working tree is never touched), and the fast scoring/reward tests are run
against it. A mutant is killed when the tests fail (or hang past the timeout), alive when they pass.

Mutation operators (each site gives one mutant per applicable operator):
  cmp        comparison flipped to its boundary twin or negation: < <=, > >=, == !=, in / not in, is / is not
  const      a numeric threshold or index moved: int n -> n + 1, float f -> f - 0.05 (0.5 -> 0.45; 1000.0 -> 999.95)
  boolop     and <-> or
  not        ``not x`` -> ``x``
  if         ``if c:`` -> ``if not c:`` (branches swapped), also for conditional expressions
  arith      + <-> -, * <-> /
  swap       width <-> height, min <-> max (a coordinate scaled by the wrong side, the wrong extreme)
  drop       a normalisation dropped: ``s.strip()/lower()/replace(..)`` -> ``s``; ``normalize_text(x)``,
             ``normalize_yes_no(x)``, ``canonical_box(x)``, ``str(x)`` -> ``x``
  continue   ``continue`` -> ``pass`` (the skip of a counted entry dropped)

Not mutated: docstrings, annotations, string literals (regexes and messages), dict literals (type-name tables).

  python bench/mutation.py                 # all modules, prints one line per mutant and the tally
  python bench/mutation.py --list          # the mutants only, no test runs
  python bench/mutation.py --only tinyrs/answers.py:199   # the mutants at one line
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = [
    "tinyrs/answers.py",
    "tinyrs/grpo/rewards/boxes.py",
    "tinyrs/grpo/rewards/closed.py",
    "tinyrs/grpo/rewards/format.py",
    "tinyrs/eval/scoring.py",
    "tinyrs/eval/metrics/base.py",
    "tinyrs/eval/metrics/accuracy.py",
    "tinyrs/eval/metrics/grounding.py",
    "tinyrs/eval/metrics/lhrs_accuracy.py",
    "tinyrs/eval/lenient.py",
]
TESTS = ["tests/test_eval_reference.py", "tests/test_eval_scoring.py", "tests/test_rewards.py",
         "tests/test_rewards_combine.py"]
# Mutants shown equivalent by reasoning (no input can tell them apart); bench/README.md gives each reason.
EQUIVALENT = {
    "tinyrs/answers.py:70:drop:.strip()#19",         # strip(" .,;:!?...") next removes the same spaces
    "tinyrs/answers.py:100:boolop:And->Or#36",       # one side a number, the other not: both forms give False
    "tinyrs/answers.py:130:drop:.strip()#47",        # the bbox_2d group always starts with "[" and ends with "]"
    "tinyrs/answers.py:166:cmp:LtE->Lt#54",          # a list match starts at "[", a bbox_2d match at '"'
    "tinyrs/eval/lenient.py:109:drop:.strip()#29",   # the stripped text is in truth iff it is in truth.strip()
    "tinyrs/eval/lenient.py:117:drop:.replace()#36", # the text was cut at its first "." just before: none left
    "tinyrs/eval/lenient.py:129:drop:.strip()#45",   # G1: a box match neither begins nor ends with whitespace
}

CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
NAME_SWAP = {"width": "height", "height": "width", "min": "max", "max": "min"}
COORD_NAMES = {"box", "a", "b", "numbers", "truth", "boxes"}
DROP_METHODS = {"strip", "lower", "replace"}
DROP_FUNCS = {"normalize_text", "normalize_yes_no", "canonical_box", "str"}


class Mutator(ast.NodeTransformer):
    """Walks a module; counts mutation sites; applies the one numbered ``target`` (None: apply none, list all)."""

    def __init__(self, target: int | None = None):
        self.target = target
        self.count = 0
        self.sites: list[tuple[int, str, str]] = []

    def _site(self, node, op: str, detail: str) -> bool:
        index = self.count
        self.count += 1
        self.sites.append((node.lineno, op, detail))
        return index == self.target

    # --- skipped subtrees ---
    def visit_Expr(self, node):  # docstrings and bare expressions (none mutated)
        if isinstance(node.value, ast.Constant):
            return node
        return self.generic_visit(node)

    def visit_FunctionDef(self, node):
        # annotations are not visited (not mutated)
        node.body = [self.visit(stmt) for stmt in node.body]
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        return node

    def visit_AnnAssign(self, node):
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_ClassDef(self, node):
        return node  # NamedTuple declarations only

    def visit_Dict(self, node):
        return node

    def visit_JoinedStr(self, node):
        return node

    def visit_ImportFrom(self, node):
        return node

    # --- operators ---
    def visit_Compare(self, node):
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            twin = CMP_SWAP.get(type(op))
            if twin and self._site(node, "cmp", f"{type(op).__name__}->{twin.__name__}"):
                node.ops[i] = twin()
        return node

    def visit_Subscript(self, node):
        # a coordinate index of a box (box[2], a[0], boxes[0][3]) is not mutated: one mutant per operator kind
        # is enough there, and the width/height swap and the arithmetic mutants already move every coordinate
        target = node.value.value if isinstance(node.value, ast.Subscript) else node.value
        if isinstance(target, ast.Name) and target.id in COORD_NAMES and isinstance(node.slice, ast.Constant):
            node.value = self.visit(node.value) if isinstance(node.value, ast.Subscript) else node.value
            return node
        return self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return node
        new = value + 1 if isinstance(value, int) else round(value - 0.05, 6)
        if self._site(node, "const", f"{value!r}->{new!r}"):
            return ast.copy_location(ast.Constant(new), node)
        return node

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            value = -node.operand.value
            new = value + 1
            if self._site(node, "const", f"{value!r}->{new!r}"):
                return ast.copy_location(ast.Constant(new), node)
            return node
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not", "not x->x"):
            return node.operand
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, "boolop", f"{type(node.op).__name__}->{other.__name__}"):
            node.op = other()
        return node

    def visit_If(self, node):
        self.generic_visit(node)
        if self._site(node, "if", "if c->if not c"):
            node.test = ast.UnaryOp(ast.Not(), node.test)
        return node

    def visit_IfExp(self, node):
        self.generic_visit(node)
        if self._site(node, "if", "a if c else b->b if c else a"):
            node.body, node.orelse = node.orelse, node.body
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        swap = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}.get(type(node.op))
        if swap and self._site(node, "arith", f"{type(node.op).__name__}->{swap.__name__}"):
            node.op = swap()
        return node

    def visit_Name(self, node):
        if node.id in NAME_SWAP and isinstance(node.ctx, ast.Load):
            if self._site(node, "swap", f"{node.id}->{NAME_SWAP[node.id]}"):
                return ast.copy_location(ast.Name(NAME_SWAP[node.id], ast.Load()), node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in DROP_METHODS:
            if self._site(node, "drop", f".{func.attr}()"):
                return func.value
        if isinstance(func, ast.Name) and func.id in DROP_FUNCS and len(node.args) == 1:
            if self._site(node, "drop", f"{func.id}(x)->x"):
                return node.args[0]
        return node

    def visit_Continue(self, node):
        if self._site(node, "continue", "continue->pass"):
            return ast.copy_location(ast.Pass(), node)
        return node


def sites(source: str) -> list[tuple[int, str, str]]:
    mutator = Mutator(None)
    mutator.visit(ast.parse(source))
    return mutator.sites


def mutant_source(source: str, index: int) -> str:
    tree = Mutator(index).visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


def run_tests(workdir: Path, timeout: float) -> tuple[str, float]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTHONPATH", None)
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                              cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
        outcome = "alive" if proc.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        outcome = "killed"  # a hang is caught
    return outcome, time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--only", action="append", default=[], help="path or path:line to mutate (repeatable)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per test run (default 120)")
    parser.add_argument("--json", type=Path, help="write every mutant's outcome here")
    parser.add_argument("--rerun", type=Path, help="a --json file of an earlier run: rerun only its survivors "
                        "(tests only added since: a killed mutant stays killed)")
    args = parser.parse_args(argv)

    plan = []
    for path in MODULES:
        source = (REPO / path).read_text()
        for index, (line, op, detail) in enumerate(sites(source)):
            if args.only and not any(sel in (path, f"{path}:{line}") for sel in args.only):
                continue
            plan.append((path, index, line, op, detail))
    if args.list:
        for path, index, line, op, detail in plan:
            print(f"{path}:{line}\t{op}\t{detail}")
        print(f"{len(plan)} mutants")
        return 0

    results = []
    if args.rerun:
        earlier = {r["mutant"]: r["outcome"] for r in json.loads(args.rerun.read_text())["results"]}
        keep = []
        for item in plan:
            key = f"{item[0]}:{item[2]}:{item[3]}:{item[4]}#{item[1]}"
            if earlier.get(key) == "killed":
                results.append({"mutant": key, "outcome": "killed"})
            else:
                keep.append(item)
        plan = keep
    with tempfile.TemporaryDirectory(prefix="tinyrs-mutation-") as tmp:
        work = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout.split()
        for name in files:
            if (REPO / name).is_file():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, work / name)
        # baseline: the unparsed, unmutated modules must pass (unparsing drops only comments)
        for path in MODULES:
            (work / path).write_text(ast.unparse(ast.parse((REPO / path).read_text())))
        outcome, seconds = run_tests(work, args.timeout)
        if outcome != "alive":
            print("baseline run fails: fix the tests first", file=sys.stderr)
            return 2
        print(f"baseline passes ({seconds:.1f} s); {len(plan)} mutants", flush=True)
        for path, index, line, op, detail in plan:
            original = (work / path).read_text()
            (work / path).write_text(mutant_source((REPO / path).read_text(), index))
            try:
                outcome, seconds = run_tests(work, args.timeout)
            finally:
                (work / path).write_text(original)
            key = f"{path}:{line}:{op}:{detail}#{index}"
            if outcome == "alive" and key in EQUIVALENT:
                outcome = "equivalent"
            results.append({"mutant": key, "outcome": outcome})
            print(f"{outcome:10s} {key}", flush=True)

    total = len(results)
    killed = sum(r["outcome"] == "killed" for r in results)
    equivalent = sum(r["outcome"] == "equivalent" for r in results)
    alive = [r["mutant"] for r in results if r["outcome"] == "alive"]
    rate = killed / (total - equivalent) if total > equivalent else 1.0
    print(f"\n{total} mutants: {killed} killed, {equivalent} equivalent, {len(alive)} alive; "
          f"kill rate {killed}/{total - equivalent} = {rate:.1%} of the non-equivalent")
    for key in alive:
        print(f"  alive: {key}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "killed": killed, "equivalent": equivalent,
                                         "alive": alive, "rate": rate}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
