"""Does the diagnosis's advice pay? Each corpus scenario, its first recommendation applied, vs a one-knob oracle.

    .venv/bin/python benchmarks/advice.py                     # `make bench`: every scenario in configs/scenarios/,
                                                              # seeds 0,1,2 (737 s from scratch on 2 shared cores,
                                                              # 204 trainings; ~5 s once cached, re-diagnosing only)
    .venv/bin/python benchmarks/advice.py --scenarios overfit,diverged --seeds 0,1
    .venv/bin/python benchmarks/advice.py --write             # also rewrites the table in docs/diagnosis.md
    .venv/bin/python benchmarks/advice.py --no-cache          # trains everything again (and refreshes the cache)

For every scenario (a spec in configs/scenarios/, its expectations in configs/scenarios/expected.yaml)
and seed, the base spec is trained, its diagnosis read, and its first actionable recommendation (the
first whose `knob` is not null) applied as one `--set knob=to` override: the base trained again with
exactly that change. Beside it the one-knob oracle: the base with each move of a fixed menu applied
alone (`MENU_TEXT`). What is compared is the shipped model's penalty-free validation loss
(summary.json `metrics.val.data_loss`), mean ± std over the seeds; a gain is base − after, paired by
seed, and is "beyond seed noise" when its mean exceeds twice its paired standard error
(std of the per-seed differences / sqrt(n)). Every spec sets `data.split_seed: 0`, so the seeds vary
only the initial weights, dropout and the batch order: the spread is the model's, not the split's.

The cache (`.bench_cache/advice/`, one JSON per training plus its run directory) is keyed by the spec
file's content hash, the sorted overrides and the seed. A rerun after the diagnosis rules changed
retrains nothing that is cached: base runs are re-diagnosed from their saved run directories
(`regcli.commands.diagnose.diagnose_run`), and only advice moves not trained before are trained.
Trainings run in-process through the Python API (`run_experiment`), quiet. The oracle's moves of one
scenario and seed that fit together share one packed model (`regcli.experiment.run_packed`, as
`regcli sweep` packs trials): 10.0 s for 5 towers of 60 epochs vs 19.8 s one by one, less on this
corpus, where early stopping ends most runs early and a pack runs as long as its longest tower
(65 s vs 70 s for good_fit + overfit at seed 0, machine load 4). A tower without dropout trains
exactly as `regcli train` would; one with dropout draws other dropout masks (the same rate), so
`--no-pack` is the way to reproduce a dropout move's number with `regcli train --set`."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported: no C++ chatter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import yaml  # noqa: E402

SCENARIOS = ROOT / "configs" / "scenarios"
MANIFEST = SCENARIOS / "expected.yaml"
DOC = ROOT / "docs" / "diagnosis.md"
CACHE = ROOT / ".bench_cache" / "advice"
START, END = "<!-- advice-table:start -->", "<!-- advice-table:end -->"
SEEDS = (0, 1, 2)
Z = 2.0  # "beyond seed noise": a mean paired gain above 2 paired standard errors
L2_START = 1e-4  # model.l2 x10 from 0: the diagnosis's own first L2
DROPOUT_STEP, DROPOUT_MAX = 0.2, 0.7
# Keys that change the validation data itself (its rows, features or labels): a recommendation that
# turns one is not applied, as its val_data_loss would measure another validation set.
VAL_KNOBS = ("data.drift", "data.val_fraction", "data.test_fraction", "data.split_seed", "data.stratify",
             "data.source", "data.path", "data.params", "data.target")
MENU_TEXT = (
    "`model.l2` ×10 (0 → 1e-4) and ÷10 (skipped at 0); `model.dropout` +0.2 and −0.2 (clipped to [0, 0.7], "
    "no-ops skipped); `model.hidden` widths ×2; `training.epochs` ×2; early stopping on "
    "(`training.early_stopping.enabled=true`, skipped when on). When a base run diverged or learned nothing "
    "(val error within 0.01 of the majority-class predictor's), two rescue moves join the menu: `training.learning_rate` ÷10 and `data.standardize=true` (when off)."
)


# --------------------------------------------------------------------------- moves


@dataclass(frozen=True)
class Move:
    """One knob set to one value: a `--set knob=value` override, and which way it turns the knob."""

    label: str
    knob: str
    value: Any
    direction: str  # "up" or "down"

    @property
    def override(self) -> str:
        return override(self.knob, self.value)


def override(knob: str, value: Any) -> str:
    """`knob=value` with the value as JSON (valid YAML), so the same move is always the same string."""
    return f"{knob}={json.dumps(value)}"


def _round(x: float) -> float:
    return float(f"{x:.6g}")  # as the diagnosis rounds its own steps: 1e-4 * 10 is 0.001, not 0.0010000000000000002


def menu(spec: Any, rescue: bool = False) -> list[Move]:
    """The oracle's moves for a spec (shorthand `hidden` models), no-ops left out."""
    model, training = spec.model, spec.training
    moves = []
    if model.hidden is not None:
        l2, rate = float(model.l2), float(model.dropout)
        moves.append(Move("model.l2 ×10", "model.l2", _round(l2 * 10) if l2 > 0 else L2_START, "up"))
        if l2 > 0:
            moves.append(Move("model.l2 ÷10", "model.l2", _round(l2 / 10), "down"))
        up, down = _round(min(DROPOUT_MAX, rate + DROPOUT_STEP)), _round(max(0.0, rate - DROPOUT_STEP))
        if up != rate:
            moves.append(Move("model.dropout +0.2", "model.dropout", up, "up"))
        if down != rate:
            moves.append(Move("model.dropout −0.2", "model.dropout", down, "down"))
        if model.hidden:
            moves.append(Move("model.hidden ×2", "model.hidden", [2 * u for u in model.hidden], "up"))
    moves.append(Move("training.epochs ×2", "training.epochs", 2 * training.epochs, "up"))
    if not training.early_stopping.enabled:
        moves.append(Move("early stopping on", "training.early_stopping.enabled", True, "up"))
    if rescue:
        moves.append(Move("learning_rate ÷10", "training.learning_rate", _round(training.learning_rate / 10), "down"))
        if not spec.data.standardize:
            moves.append(Move("standardize on", "data.standardize", True, "up"))
    return moves


def direction(old: Any, new: Any) -> str | None:
    """"up" when a recommendation raises its knob (a list: its total width), "down" when it lowers it,
    "removed" when it sets a setting to null (data.drift -> null)."""
    if new is None and old is not None:
        return "removed"

    def size(v: Any) -> float:
        return float(sum(v)) if isinstance(v, list) else float(v)

    try:
        a, b = size(old), size(new)
    except (TypeError, ValueError):
        return None
    return "up" if b > a else "down" if b < a else None


def first_actionable(recommendations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first recommendation that turns a knob (`knob` not null); None when there is none."""
    return next((r for r in recommendations if r.get("knob")), None)


# --------------------------------------------------------------------------- trainings, cached


class Trainer:
    """Trains (spec, overrides, seed) once; results and run directories kept under `cache`."""

    def __init__(self, cache: Path, use_cache: bool = True, pack: bool = True):
        self.cache, self.use_cache, self.pack = cache, use_cache, pack
        self.trained = self.rediagnosed = 0
        self.train_seconds = 0.0
        self.fresh: set[Path] = set()  # entries written by this process: used even under --no-cache

    def key(self, path: Path, overrides: list[str], seed: int) -> str:
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps([content, sorted(overrides), seed]).encode()).hexdigest()[:16]

    def _where(self, path: Path, overrides: list[str], seed: int) -> tuple[Path, Path]:
        folder = self.cache / path.stem
        key = self.key(path, overrides, seed)
        return folder / f"{key}.json", folder / key

    def cached(self, path: Path, overrides: list[str], seed: int) -> dict[str, Any] | None:
        entry, run = self._where(path, overrides, seed)
        if not ((self.use_cache or entry in self.fresh) and entry.is_file() and run.is_dir()):
            return None
        return json.loads(entry.read_text())

    def base(self, path: Path, seed: int) -> dict[str, Any]:
        """The base run, its diagnosis recomputed from its run directory by today's rules."""
        result = self.cached(path, [], seed)
        if result is None:
            return self.train(path, [[]], seed)[0]
        from regcli.commands.diagnose import diagnose_run

        with quiet():
            diagnosis = diagnose_run(self._where(path, [], seed)[1])["diagnosis"]
        self.rediagnosed += 1
        result.update(verdict=diagnosis["verdict"], recommendations=diagnosis["recommendations"])
        self._save(path, [], seed, result)
        return result

    def get(self, path: Path, overrides: list[str], seed: int) -> dict[str, Any]:
        return self.cached(path, overrides, seed) or self.train(path, [overrides], seed)[0]

    def train(self, path: Path, batch: list[list[str]], seed: int) -> list[dict[str, Any]]:
        """Trains each override list of `batch` on the base spec at `seed`; packs them when they fit together."""
        from regcli.errors import RunFailedError
        from regcli.experiment import run_experiment, run_packed
        from regcli.spec import load_experiment_spec, spec_to_dict
        from regcli.training.packs import pack_key

        specs = [load_experiment_spec(path, [*overrides, f"seed={seed}"]) for overrides in batch]
        runs = [self._where(path, overrides, seed)[1] for overrides in batch]
        for run in runs:
            shutil.rmtree(run, ignore_errors=True)
        started = time.perf_counter()
        outcomes = None
        with quiet():
            if self.pack and len(specs) > 1 and len({pack_key(spec_to_dict(s)) for s in specs} - {None}) == 1:
                try:
                    outcomes = run_packed(specs, runs)
                except RunFailedError:  # as a sweep does: a failed pack's trials are retried one by one
                    for run in runs:
                        shutil.rmtree(run, ignore_errors=True)
            if outcomes is None:
                outcomes = [run_experiment(s, out=r.parent, run_dir=r) for s, r in zip(specs, runs, strict=True)]
        self.train_seconds += time.perf_counter() - started
        self.trained += len(specs)
        results = [_result(outcome) for outcome in outcomes]
        for overrides, result in zip(batch, results, strict=True):
            self._save(path, overrides, seed, result)
        return results

    def ensure(self, path: Path, moves: list[Move], seed: int) -> None:
        """Trains the moves not cached yet, those that can share a packed model together."""
        from regcli.spec import load_experiment_spec, spec_to_dict
        from regcli.training.packs import pack_key

        todo = [[m.override] for m in moves if self.cached(path, [m.override], seed) is None]
        groups: dict[Any, list[list[str]]] = {}
        for overrides in todo:
            key = pack_key(spec_to_dict(load_experiment_spec(path, [*overrides, f"seed={seed}"])))
            groups.setdefault(key if key is not None and self.pack else ("alone", len(groups)), []).append(overrides)
        for batch in groups.values():
            self.train(path, batch, seed)

    def _save(self, path: Path, overrides: list[str], seed: int, result: dict[str, Any]) -> None:
        entry, _ = self._where(path, overrides, seed)
        entry.parent.mkdir(parents=True, exist_ok=True)
        record = {"spec": path.name, "overrides": sorted(overrides), "seed": seed, **result}
        entry.write_text(json.dumps(record, indent=1, allow_nan=False, default=str) + "\n")
        self.fresh.add(entry)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Training as `--quiet` runs it: Keras's prints ("Invalid loss, terminating training") and numpy's
    RuntimeWarnings on NaN losses kept off stdout, so stdout holds the table alone."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # tf.function retracing notes of packed towers
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _result(outcome: Any) -> dict[str, Any]:
    """What the benchmark keeps of one training."""
    metrics = outcome.summary.get("metrics", {})
    return {
        "val_data_loss": _finite(metrics.get("val", {}).get("data_loss")),
        "val_error": _finite(metrics.get("val", {}).get("error")),
        "train_error": _finite(metrics.get("train", {}).get("error")),
        "baseline_val_error": outcome.summary.get("baseline_val_error"),
        "state": outcome.state,
        "epochs_run": outcome.summary.get("epochs_run"),
        "seconds": outcome.summary.get("seconds"),
        "verdict": outcome.diagnosis.get("verdict"),
        "recommendations": outcome.diagnosis.get("recommendations", []),
        "run_dir": outcome.run_dir.name,  # inside the cache folder: the key
    }


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# --------------------------------------------------------------------------- one scenario


@dataclass
class Paired:
    """base − after over the seeds both ran finite, and the seeds a move rescued or broke."""

    gain: float | None
    se: float | None
    fixed: int  # seeds whose base diverged and the move's run did not
    broke: int  # seeds whose base ran finite and the move's run diverged

    @property
    def beyond_noise(self) -> bool:
        """A mean gain above `Z` paired standard errors (or diverged seeds rescued), no seed broken."""
        significant = self.gain is not None and self.se is not None and self.gain > Z * self.se
        return self.broke == 0 and (self.fixed > 0 or significant)

    @property
    def rank(self) -> tuple[int, float]:
        return self.fixed - self.broke, -math.inf if self.gain is None else self.gain


def paired(base: dict[int, dict], after: dict[int, dict]) -> Paired:
    """The paired improvement of `after` over `base` (seeds paired: the same initial weights)."""
    pairs = [(base[s]["val_data_loss"], after[s]["val_data_loss"]) for s in base if s in after]
    diffs = [b - a for b, a in pairs if b is not None and a is not None]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) >= 2 else None
    return Paired(
        statistics.fmean(diffs) if diffs else None,
        se,
        sum(b is None and a is not None for b, a in pairs),
        sum(b is not None and a is None for b, a in pairs),
    )


@dataclass
class Scenario:
    """One scenario's runs: base, the advice applied, and every oracle move, per seed."""

    name: str
    expected: dict[str, Any]
    base: dict[int, dict]
    advice: dict[int, dict | None]  # seed -> the first actionable recommendation applied (None: none)
    after: dict[int, dict]  # seed -> the run with the advice applied (the base run when there is none)
    oracle: list[tuple[Move, dict[int, dict]]]

    @property
    def advice_gain(self) -> Paired:
        return paired(self.base, self.after)

    def best(self) -> tuple[Move, Paired] | None:
        scored = [(move, paired(self.base, runs)) for move, runs in self.oracle]
        return max(scored, key=lambda mp: mp[1].rank) if scored else None


def not_learning(run: dict[str, Any]) -> bool:
    """Diverged, or a validation error no better than the majority-class (or mean) predictor's."""
    val, baseline = run["val_error"], run.get("baseline_val_error")
    return run["val_data_loss"] is None or (val is not None and baseline is not None and val >= baseline - 0.01)


def run_scenario(trainer: Trainer, name: str, expected: dict[str, Any], seeds: list[int]) -> Scenario:
    """Base runs (re-diagnosed when cached), the advice of each seed applied, and the oracle's menu."""
    from regcli.errors import SpecError
    from regcli.spec import load_experiment_spec

    path = SCENARIOS / f"{name}.yaml"
    base = {seed: trainer.base(path, seed) for seed in seeds}
    moves = menu(load_experiment_spec(path), rescue=any(not_learning(r) for r in base.values()))
    for seed in seeds:
        trainer.ensure(path, moves, seed)
    oracle = [(m, {seed: trainer.get(path, [m.override], seed) for seed in seeds}) for m in moves]
    advice: dict[int, dict | None] = {}
    after: dict[int, dict] = {}
    for seed in seeds:
        rec = advice[seed] = first_actionable(base[seed]["recommendations"])
        if rec is not None and rec["knob"].startswith(VAL_KNOBS):
            rec["not_applied"] = "changes the validation data"
        if rec is None or rec.get("not_applied"):
            after[seed] = base[seed]  # "ship it", or not comparable: nothing changes, a gain of 0
            continue
        try:
            after[seed] = trainer.get(path, [override(rec["knob"], rec["to"])], seed)
        except SpecError as exc:  # e.g. a `model.layers` recommendation: no plain dotted key
            rec["not_applied"] = str(exc).splitlines()[0]
            after[seed] = base[seed]
    return Scenario(name, expected, base, advice, after, oracle)


# --------------------------------------------------------------------------- the report


def fmt_losses(runs: dict[int, dict]) -> str:
    """mean ± std of the finite val_data_loss values, and how many seeds diverged."""
    values = [r["val_data_loss"] for r in runs.values() if r["val_data_loss"] is not None]
    diverged = len(runs) - len(values)
    if not values:
        return f"diverged {diverged}/{len(runs)}"
    std = statistics.stdev(values) if len(values) >= 2 else 0.0
    text = f"{statistics.fmean(values):.4f} ± {std:.4f}"
    return text + (f" ({diverged}/{len(runs)} diverged)" if diverged else "")


def fmt_gain(p: Paired) -> str:
    parts = []
    if p.gain is not None:
        parts.append(f"{p.gain:+.4f}" + (f" ± {p.se:.4f}" if p.se is not None else ""))
    if p.fixed:
        parts.append(f"rescues {p.fixed}")
    if p.broke:
        parts.append(f"diverges {p.broke}")
    return ", ".join(parts) or "—"


def fmt_advice(sc: Scenario) -> str:
    """The distinct first actionable recommendations over the seeds, each with how many seeds gave it."""
    counts: dict[str, int] = {}
    for rec in sc.advice.values():
        if rec is None:
            text = "none"
        else:
            text = f"`{rec['knob']}` {json.dumps(rec['from'])} → {json.dumps(rec['to'])}"
            text += f" (not applied: {rec['not_applied']})" if rec.get("not_applied") else ""
        counts[text] = counts.get(text, 0) + 1
    return "; ".join(f"{t} ({n}/{len(sc.advice)})" for t, n in counts.items())


def fmt_verdicts(sc: Scenario) -> str:
    counts: dict[str, int] = {}
    for run in sc.base.values():
        counts[run["verdict"]] = counts.get(run["verdict"], 0) + 1
    return ", ".join(f"{v} ×{n}" for v, n in counts.items())


def agreement(sc: Scenario) -> str:
    """How many seeds' diagnoses give the manifest's verdict, and its first knob turned its way."""
    want_knob, want_dir = sc.expected.get("first_knob"), sc.expected.get("direction")
    verdicts = sum(r["verdict"] == sc.expected.get("verdict") for r in sc.base.values())
    knobs = 0
    for rec in sc.advice.values():
        got = None if rec is None else rec["knob"]
        turned = want_dir is None or (rec is not None and direction(rec["from"], rec["to"]) == want_dir)
        knobs += got == want_knob and turned
    n = len(sc.base)
    return f"{verdicts}/{n}, {knobs}/{n}"


def main_table(scenarios: list[Scenario]) -> str:
    rows = [
        "| scenario | verdicts | advice (first actionable) | val_data_loss base | after advice | advice gain ± SE "
        "| beyond noise | best menu move: gain ± SE | advice / best | manifest verdict, knob: seeds agreeing |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc in scenarios:
        gain, best = sc.advice_gain, sc.best()
        ratio = "—"
        if best is not None and best[1].gain and best[1].gain > 0 and gain.gain is not None and not best[1].fixed:
            ratio = f"{gain.gain / best[1].gain:.2f}"
        best_text = "—" if best is None else f"{best[0].label}: {fmt_gain(best[1])}"
        knob = sc.expected.get("first_knob")
        want = f"{sc.expected.get('verdict')}, " + (f"`{knob}` {sc.expected.get('direction')}" if knob else "no knob")
        rows.append(
            f"| {sc.name} | {fmt_verdicts(sc)} | {fmt_advice(sc)} | {fmt_losses(sc.base)} | {fmt_losses(sc.after)} "
            f"| {fmt_gain(gain)} | {'yes' if gain.beyond_noise else 'no'} | {best_text} | {ratio} "
            f"| {want.strip()}: {agreement(sc)} |"
        )
    return "\n".join(rows)


def oracle_table(scenarios: list[Scenario]) -> str:
    rows = [
        "| scenario | move | override | val_data_loss | gain ± SE | beyond noise |",
        "|---|---|---|---|---|---|",
    ]
    for sc in scenarios:
        rows.append(f"| {sc.name} | (base) | | {fmt_losses(sc.base)} | | |")
        for move, runs in sc.oracle:
            p = paired(sc.base, runs)
            rows.append(
                f"| {sc.name} | {move.label} | `{move.override}` | {fmt_losses(runs)} | {fmt_gain(p)} "
                f"| {'yes' if p.beyond_noise else 'no'} |"
            )
    return "\n".join(rows)


def report(scenarios: list[Scenario], seeds: list[int], trainer: Trainer, wall: float) -> str:
    import platform

    runs = {r["run_dir"]: r for sc in scenarios for group in (sc.base, sc.after, *(g for _, g in sc.oracle))
            for r in group.values()}
    behind = sum(r.get("seconds") or 0.0 for r in runs.values())
    return (
        f"Seeds {', '.join(map(str, seeds))}; {time.strftime('%Y-%m-%d')}; {platform.machine()}, "
        f"{os.cpu_count()} cores. {len(runs)} trainings behind this table ({behind:.0f} s of training); "
        f"this run trained {trainer.trained} ({trainer.train_seconds:.0f} s) and re-diagnosed "
        f"{trainer.rediagnosed} cached base runs, {wall:.0f} s in all.\n\n"
        f"{main_table(scenarios)}\n\n"
        "Every oracle move, alone (val_data_loss mean ± std over the seeds; gain = base − move, paired by seed):\n\n"
        f"{oracle_table(scenarios)}\n"
    )


def write_doc(table: str, doc: Path = DOC) -> None:
    """Puts `table` between the advice-table markers of docs/diagnosis.md (a new section if they are missing)."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else "# How the diagnosis reads a run\n"
    block = f"{START}\n{table}{END}"
    if START in text and END in text:
        head, _, rest = text.partition(START)
        text = head + block + rest.partition(END)[2]
    else:
        text = text.rstrip("\n") + f"\n\n## Does the advice pay?\n\n{block}\n"
    doc.write_text(text, encoding="utf-8")


def load_manifest() -> dict[str, dict[str, Any]]:
    """expected.yaml: spec file name -> {problem, verdict, first_knob, direction}."""
    return {Path(name).stem: entry for name, entry in yaml.safe_load(MANIFEST.read_text()).items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", help="Comma-separated scenario names (spec file stems). Defaults to all.")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="Comma-separated seeds. Defaults to 0,1,2.")
    parser.add_argument("--write", action="store_true", help="Rewrite the table in docs/diagnosis.md.")
    parser.add_argument("--no-cache", action="store_true", help="Train everything again (the cache is refreshed).")
    parser.add_argument("--cache", type=Path, default=CACHE, help="Cache directory. Defaults to .bench_cache/advice/.")
    parser.add_argument("--no-pack", action="store_true", help="Train every oracle move alone, not packed.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    manifest = load_manifest()
    names = args.scenarios.split(",") if args.scenarios else list(manifest)
    unknown = [n for n in names if n not in manifest or not (SCENARIOS / f"{n}.yaml").is_file()]
    if unknown:
        print(f"--scenarios: unknown {', '.join(unknown)}. Known: {', '.join(manifest)}.", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    trainer = Trainer(args.cache, use_cache=not args.no_cache, pack=not args.no_pack)
    started, scenarios = time.perf_counter(), []
    for name in names:
        t, n = time.perf_counter(), trainer.trained
        scenarios.append(run_scenario(trainer, name, manifest[name], seeds))
        print(f"{name}: {trainer.trained - n} trainings, {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    table = report(scenarios, seeds, trainer, time.perf_counter() - started)
    print(table)
    if args.write:
        write_doc(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
