"""``make mutants``: every catalogue mutant must make ``vitconv verify --quick`` fail.

For each mutant (``tests.mutants.catalogue``) the package folders (``vitconv/`` and the
top-level ``theory/``, ``numeric/``, ``proofs/``, ``report/`` it maps as ``vitconv.*``) are
copied to a temporary folder, the mutant's snippet replaced,
and ``python -m vitconv.report.cli verify --quick`` run there (the copy first on ``PYTHONPATH``).
The gate passes only if

* the unmutated copy passes (the baseline: otherwise every "kill" would be meaningless);
* every mutant is rejected: the run exits 1 and its ``report.json`` says which
  obligations failed (a run that crashes before writing its report is not a rejection);
* every obligation of the registry is failed by at least one mutant.

Results go to ``out/mutants/`` (``mutants.json``, ``mutants.md``) and to the terminal.

    python -m tests.mutants.gate [--only NAME ...] [--jobs 2] [--out out]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.mutants.catalogue import CATALOGUE, Mutant

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vitconv", "theory", "numeric", "proofs", "report")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Outcome:
    """One run: the mutant (``None`` for the baseline), its exit code, what failed."""

    name: str
    returncode: int
    failed: tuple[str, ...]   # obligation ids that failed or raised
    seconds: float
    note: str = ""

    @property
    def rejected(self) -> bool:
        return self.returncode == 1 and bool(self.failed)


def apply(mutant: Mutant, root: Path) -> None:
    """Replace the mutant's snippet in the copy at ``root``.

    Raises:
        ValueError: unless the snippet occurs exactly once (a stale catalogue entry).
    """
    path = root / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise ValueError(f"mutant {mutant.name}: the snippet occurs {count} times in "
                         f"{mutant.path}, not once: {mutant.old!r}")
    path.write_text(text.replace(mutant.old, mutant.new))


def _imported_from_elsewhere(root: Path, env: dict[str, str]) -> str | None:
    """Which subpackage would be imported from outside the copy at ``root`` (the editable
    install of the checkout, for instance), if any: then every mutant would "survive"."""
    code = ("import importlib.util as u; print('\\n'.join(u.find_spec(f'vitconv.{n}').origin "
            f"for n in {PACKAGES[1:]!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
    outside = [o for o in done.stdout.split() if not Path(o).resolve().is_relative_to(root)]
    return ", ".join(outside) or None


def run(mutant: Mutant | None) -> Outcome:
    """Copy the packages, apply ``mutant`` (if any), run ``verify --quick`` there."""
    name = mutant.name if mutant else "(baseline)"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitconv-mutant-") as tmp:
        root = Path(tmp)
        for package in PACKAGES:
            shutil.copytree(ROOT / package, root / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", root)  # marks the copy as a vitconv checkout
        if mutant:
            apply(mutant, root)
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        stray = _imported_from_elsewhere(root, env)
        if stray:  # the installed tree would run instead of the mutated copy
            return Outcome(name, -1, (), time.perf_counter() - start,
                           f"the copy is not what runs: {stray}")
        cmd = [sys.executable, "-m", "vitconv.report.cli", "verify", "--quick", "--pdf", "no",
               "--out", str(root / "out")]
        try:
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return Outcome(name, -1, (), time.perf_counter() - start, "timed out")
        report = root / "out" / "verify" / "report.json"
        if not report.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return Outcome(name, proc.returncode, (), time.perf_counter() - start,
                           f"crashed before writing its report: {tail[0]}")
        doc = json.loads(report.read_text())
        failed = tuple(o["id"] for o in doc["obligations"] if o["status"] != "passed")
        return Outcome(name, proc.returncode, failed, time.perf_counter() - start)


def registry_obligations() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from vitconv.proofs import default_registry

    return default_registry().obligation_ids()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants.gate",
                                     description="vitconv's mutation gate")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only "
                        "(the coverage requirement is then not enforced)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder")
    args = parser.parse_args(argv)
    known = {m.name: m for m in CATALOGUE}
    if len({m.name for m in CATALOGUE}) != len(CATALOGUE):
        print("mutants: duplicate names in the catalogue")
        return 2
    unknown = [n for n in args.only or () if n not in known]
    if unknown:
        print(f"mutants: unknown {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    if args.jobs < 1:
        print(f"mutants: --jobs must be >= 1, got {args.jobs}")
        return 2
    chosen = [known[n] for n in args.only] if args.only else list(CATALOGUE)
    for m in chosen:  # stale snippets fail at once, before any run
        text = (ROOT / m.path).read_text()
        if text.count(m.old) != 1:
            print(f"mutants: {m.name}: snippet occurs {text.count(m.old)} times in {m.path}")
            return 2
    print(f"mutation gate: baseline + {len(chosen)} mutants, {args.jobs} at a time", flush=True)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for outcome in pool.map(run, [None, *chosen]):
            outcomes.append(outcome)
            mark = ("ok" if outcome.name == "(baseline)" and outcome.returncode == 0
                    else "killed" if outcome.rejected else "SURVIVED" if outcome.returncode == 0
                    else "CRASHED")
            killers = ", ".join(outcome.failed[:4]) + (" ..." if len(outcome.failed) > 4 else "")
            print(f"  {mark:8} {outcome.name:32} {outcome.seconds:6.1f} s  "
                  f"{killers or outcome.note}", flush=True)
    baseline, results = outcomes[0], outcomes[1:]
    problems = []
    if baseline.returncode != 0:
        problems.append(f"the unmutated copy does not pass ({baseline.note or baseline.failed})")
    problems += [f"{o.name} was not rejected ({o.note or 'verify passed'})"
                 for o in results if not o.rejected]
    killed_by: dict[str, list[str]] = {oid: [] for oid in registry_obligations()}
    for o in results:
        for oid in o.failed:
            killed_by.setdefault(oid, []).append(o.name)
    if not args.only:
        problems += [f"obligation {oid} is failed by no mutant" for oid, names in
                     killed_by.items() if not names]
    _write(args.out / "mutants", chosen, results, baseline, killed_by, problems)
    kills = sum(o.rejected for o in results)
    print(f"mutation gate: {kills} of {len(results)} mutants rejected; "
          f"{sum(bool(v) for v in killed_by.values())} of {len(killed_by)} obligations "
          f"failed by some mutant; {len(problems)} problem(s)")
    for p in problems:
        print(f"  - {p}")
    return 1 if problems else 0


def _write(out: Path, chosen: list[Mutant], results: list[Outcome], baseline: Outcome,
           killed_by: dict[str, list[str]], problems: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {"baseline": asdict(baseline), "problems": problems,
           "mutants": [{**asdict(m), **asdict(o), "rejected": o.rejected}
                       for m, o in zip(chosen, results, strict=True)],
           "killed_by": killed_by}
    tmp = out / "mutants.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out / "mutants.json")
    lines = ["# Mutation gate", "", f"{sum(o.rejected for o in results)} of {len(results)} "
             "catalogue mutants rejected by `vitconv verify --quick`.", "",
             "| mutant | file | what is wrong | rejected | failed obligations |",
             "|---|---|---|---|---|"]
    for m, o in zip(chosen, results, strict=True):
        lines.append(f"| {m.name} | `{m.path}` | {m.why} | {'yes' if o.rejected else '**NO**'} "
                     f"| {', '.join(o.failed) or o.note} |")
    lines += ["", "| obligation | failed by |", "|---|---|"]
    lines += [f"| {oid} | {', '.join(names) or '**none**'} |" for oid, names in killed_by.items()]
    tmp = out / "mutants.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "mutants.md")


if __name__ == "__main__":
    sys.exit(main())
