"""Benchmark: the intent model and the rules that judge it, on sentences it never learned from, per language.

Each language's model is learned from ivr/line/understanding/examples.<code>.tsv, as the line learns it
(one thread), and judged on held_out.<code>.tsv, which it never sees: English, then every other language
with an examples file (Arabic, Spanish), each against English's targets. Each held-out sentence is classified and
judged (ivr/line/dialogue/meaning.py) as at a step that takes every intent, and the line's decision is:

- right: it acts on the intent the person meant, or, when they meant nothing the line knows (`unknown`),
  it does not act (it asks back);
- asked back: it asks back a sentence that meant a known intent (not right, but nothing happens);
- harmful: it acts on opt_out, opt_in or confirm when the person meant something else (a yes taken where
  they said no is one);
- wrong: it acts on any other intent the person did not mean.

It prints the model's raw accuracy (its best guess, before any threshold or guard), the decisions per
intent and per channel (a row written for `any` channel counts for both voice and sms), the confusion
table, every harmful and wrong decision and every known intent asked back (with the model's guess and
why), the fit time and the latency of one sentence (classify + judge), then the targets with PASS or
FAIL, for each language and then together; the exit status is 1 if any is missed in any language.

    .venv/bin/python bench/understanding.py [--language en|ar|es ...] [--calls 2000] [--json]
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.line.dialogue.meaning import CONFIRM, INTENTS, OPT_IN, OPT_OUT, UNKNOWN, guard, judge, normalise  # noqa: E402
from ivr.line.understanding.model import (  # noqa: E402
    Example,
    IntentModel,
    examples_file,
    held_out_file,
    languages_with_examples,
    load_examples,
)

EVERY_INTENT = frozenset(INTENTS)
WEIGHTY = (OPT_OUT, OPT_IN, CONFIRM)  # acting on one of these wrongly changes a choice or says yes for someone
ASKED_BACK = "asked back"
DECIDED = (*(intent for intent in INTENTS if intent != UNKNOWN), ASKED_BACK)
CHANNELS = ("voice", "sms")
OUTCOMES = ("right", "asked back", "wrong", "harmful")

TARGET_RIGHT = 0.95
TARGET_P99_MS = 5.0
WARM_UP_CALLS = 200


@dataclass(frozen=True)
class Decision:
    gold: str
    channel: str
    text: str
    guess: str  # the model's best intent, before the threshold and the guard
    confidence: float
    decided: str  # the intent acted on, or ASKED_BACK
    outcome: str  # right, asked back, wrong or harmful
    why: str  # why it was asked back (Meaning.asked, and the guard's reason when hedged), or ""


@dataclass
class Tally:
    count: int = 0
    raw_right: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, decision: Decision) -> None:
        self.count += 1
        self.raw_right += decision.guess == decision.gold
        self.outcomes[decision.outcome] += 1

    def counts(self) -> dict[str, int]:
        return {"count": self.count, "raw": self.raw_right, **{outcome: self.outcomes[outcome] for outcome in OUTCOMES}}

    @property
    def right(self) -> float:
        return self.outcomes["right"] / self.count if self.count else 0.0


@dataclass(frozen=True)
class Latency:
    calls: int
    wall_p50_ms: float
    wall_p99_ms: float
    wall_max_ms: float
    cpu_p50_ms: float
    cpu_p99_ms: float
    cpu_max_ms: float


@dataclass(frozen=True)
class Fit:
    examples: int
    import_seconds: float  # scikit-learn's pieces, once per process
    wall_seconds: float
    cpu_seconds: float


def outcome_of(gold: str, decided: str) -> str:
    if decided == ASKED_BACK:
        return "right" if gold == UNKNOWN else "asked back"
    if decided == gold:
        return "right"
    return "harmful" if decided in WEIGHTY else "wrong"


def decide(model: IntentModel, example: Example) -> Decision:
    heard = model.classify(example.text)
    meaning = judge(example.text, heard, EVERY_INTENT, language=model.language)
    decided = meaning.intent or ASKED_BACK
    why = f"hedged: {guard(example.text, heard.intent, model.language)}" if meaning.asked == "hedged" else meaning.asked
    return Decision(
        example.intent, example.channel, example.text, heard.intent, heard.confidence, decided,
        outcome_of(example.intent, decided), why,
    )  # fmt: skip


def key(text: str, language: str = "en") -> str:
    """An utterance as compared between the files: normalised, apostrophes removed ("i'd" is "id")."""
    return normalise(text, language).replace("'", "")


def shared_utterances(examples: list[Example], held_out: list[Example], language: str = "en") -> list[str]:
    learned = {key(example.text, language) for example in examples}
    return sorted({example.text for example in held_out if key(example.text, language) in learned})


def fit(examples: list[Example], language: str = "en") -> tuple[IntentModel, Fit]:
    started = time.perf_counter()
    import sklearn.feature_extraction.text  # noqa: F401  the model imports these itself; timed apart here
    import sklearn.linear_model  # noqa: F401

    imported = time.perf_counter()
    cpu = time.process_time()
    model = IntentModel(examples, language)  # fits inside threadpool_limits(1), as the line does, and warms up
    return model, Fit(len(examples), imported - started, time.perf_counter() - imported, time.process_time() - cpu)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure_latency(model: IntentModel, held_out: list[Example], calls: int) -> Latency:
    """classify + judge, one sentence per call, the held-out set round and round after a warm-up.

    Both clocks are read around each call: wall time is what a caller waits, CPU time (this process's,
    so any pool thread is counted) is the work itself. The machine is shared, so another tenant's
    burst can stall a call in wall time without it doing any more work."""
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(WARM_UP_CALLS + calls):
        example = held_out[i % len(held_out)]
        wall_started, cpu_started = time.perf_counter_ns(), time.process_time_ns()
        judge(example.text, model.classify(example.text), EVERY_INTENT, language=model.language)
        cpu_ns, wall_ns = time.process_time_ns() - cpu_started, time.perf_counter_ns() - wall_started
        if i >= WARM_UP_CALLS:
            wall.append(wall_ns / 1e6)
            cpu.append(cpu_ns / 1e6)
    return Latency(
        calls, statistics.median(wall), percentile(wall, 0.99), max(wall),
        statistics.median(cpu), percentile(cpu, 0.99), max(cpu),
    )  # fmt: skip


def tallies(decisions: list[Decision]) -> tuple[Tally, dict[str, Tally], dict[str, Tally]]:
    whole = Tally()
    by_intent = {intent: Tally() for intent in INTENTS}
    by_channel = {channel: Tally() for channel in CHANNELS}
    for decision in decisions:
        whole.add(decision)
        by_intent[decision.gold].add(decision)
        for channel in CHANNELS if decision.channel == "any" else (decision.channel,):
            by_channel[channel].add(decision)
    return whole, by_intent, by_channel


def confusion(decisions: list[Decision]) -> dict[str, dict[str, int]]:
    """Gold intent -> decided intent (or asked back) -> how many. Nothing is decided `unknown`: it is asked back."""
    table = {gold: dict.fromkeys(DECIDED, 0) for gold in INTENTS}
    for decision in decisions:
        table[decision.gold][decision.decided] += 1
    return table


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "     -"


def print_tally(label: str, tally: Tally) -> None:
    outcomes = tally.outcomes
    print(
        f"  {label:<9} {tally.count:>4}  raw {_percent(tally.raw_right, tally.count)}"
        f"  right {_percent(outcomes['right'], tally.count)}  asked {outcomes['asked back']:>3}"
        f"  wrong {outcomes['wrong']:>3}  harmful {outcomes['harmful']:>3}"
    )


def print_confusion(table: dict[str, dict[str, int]]) -> None:
    print("  gold \\ decided " + "".join(f"{'asked' if column == ASKED_BACK else column:>8}" for column in DECIDED))
    for gold, row in table.items():
        print(f"  {gold:<15} " + "".join(f"{row[column] or '.':>8}" for column in DECIDED))


def print_decisions(title: str, decisions: list[Decision]) -> None:
    print(f"\n{title}: {len(decisions)}")
    for decision in decisions:
        why = f", {decision.why}" if decision.why else ""
        print(f"  {decision.gold:>8} -> {decision.decided:<10} ({decision.guess} {decision.confidence:.2f}{why}, "
              f"{decision.channel}) {decision.text}")


Target = tuple[str, str, bool]


def bench_language(language: str, calls: int, as_json: bool) -> tuple[list[Target], dict[str, object]]:
    """One language's model learned, judged and timed; its report printed (unless `as_json`), its targets
    and its figures returned."""
    examples_path, held_out_path = examples_file(language), held_out_file(language)
    examples, held_out = load_examples(examples_path, language), load_examples(held_out_path, language)
    shared = shared_utterances(examples, held_out, language)
    model, fitted = fit(examples, language)
    decisions = [decide(model, example) for example in held_out]
    latency = measure_latency(model, held_out, calls)
    whole, by_intent, by_channel = tallies(decisions)
    harmful = [decision for decision in decisions if decision.outcome == "harmful"]
    wrong = [decision for decision in decisions if decision.outcome == "wrong"]
    asked = [decision for decision in decisions if decision.outcome == "asked back"]
    # Judged on CPU time: the machine is shared (2 cores, other tenants), and a neighbour's burst stalls a call
    # in wall time without the line doing more work; the wall-time p99 is shown beside it.
    targets = [
        (f"right decisions at least {TARGET_RIGHT:.0%}", f"{whole.right:.1%}", whole.right >= TARGET_RIGHT),
        ("harmful decisions: none", str(len(harmful)), not harmful),
        (f"classify + judge p99 under {TARGET_P99_MS:g} ms (CPU time)",
         f"{latency.cpu_p99_ms:.2f} ms (wall {latency.wall_p99_ms:.2f} ms)", latency.cpu_p99_ms < TARGET_P99_MS),
        ("held-out shares no utterance with the examples", str(len(shared)), not shared),
    ]  # fmt: skip
    figures: dict[str, object] = {
        "examples": len(examples), "held_out": len(held_out),
        "raw_accuracy": whole.raw_right / whole.count, "right": whole.right, "decisions": whole.counts(),
        "by_intent": {name: tally.counts() for name, tally in by_intent.items()},
        "by_channel": {name: tally.counts() for name, tally in by_channel.items()},
        "confusion": confusion(decisions),
        "harmful": [dataclasses.asdict(d) for d in harmful], "wrong": [dataclasses.asdict(d) for d in wrong],
        "asked_back": [dataclasses.asdict(d) for d in asked],
        "fit": dataclasses.asdict(fitted), "latency": dataclasses.asdict(latency),
        "shared_utterances": shared,
        "targets": [{"target": label, "value": value, "pass": kept} for label, value, kept in targets],
    }  # fmt: skip
    if as_json:
        return targets, figures
    print(f"== {language}: learned from {len(examples)} examples ({examples_path.name}), judged on {len(held_out)} "
          f"held-out ({held_out_path.name}); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"\nraw accuracy (the model's best guess): {whole.raw_right}/{whole.count} = {whole.raw_right / whole.count:.1%}")
    print(f"decisions (judge, every intent taken): right {whole.outcomes['right']}, asked back "
          f"{whole.outcomes['asked back']}, wrong {whole.outcomes['wrong']}, harmful {whole.outcomes['harmful']}")
    print("\nper intent (gold):")
    for name, tally in by_intent.items():
        print_tally(name, tally)
    print("per channel (a row for 'any' counts in both):")
    for name, tally in by_channel.items():
        print_tally(name, tally)
    print("\nconfusion (gold rows, decided columns):")
    print_confusion(confusion(decisions))
    print_decisions("harmful", harmful)
    print_decisions("wrong (acted on another intent, not harmful)", wrong)
    print_decisions("asked back (a known intent; the model's guess and why)", asked)
    if shared:
        print(f"\nheld-out sentences also in the examples: {len(shared)}")
        for text in shared:
            print(f"  {text}")
    print(f"\nfit: import scikit-learn {fitted.import_seconds:.2f} s; learn {fitted.examples} examples "
          f"{fitted.wall_seconds:.2f} s wall, {fitted.cpu_seconds:.2f} s CPU")
    print(f"classify + judge, {latency.calls} calls after {WARM_UP_CALLS} to warm up:")
    print(f"  wall  p50 {latency.wall_p50_ms:.2f} ms  p99 {latency.wall_p99_ms:.2f} ms  max {latency.wall_max_ms:.2f} ms")
    print(f"  CPU   p50 {latency.cpu_p50_ms:.2f} ms  p99 {latency.cpu_p99_ms:.2f} ms  max {latency.cpu_max_ms:.2f} ms")
    print()
    for label, value, kept in targets:
        print(f"{'PASS' if kept else 'FAIL'} {language} {label:<52} {value}")
    print()
    return targets, figures


def main() -> None:
    known = languages_with_examples()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--language", action="append", choices=known, help="only this language (again for more); all by default")
    parser.add_argument("--calls", type=int, default=2000, help="timed classify + judge calls (at least 2000)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object instead")
    args = parser.parse_args()
    if args.calls < 2000:
        parser.error("--calls: at least 2000, so the p99 rests on 20 calls or more")

    results = {language: bench_language(language, args.calls, args.json) for language in args.language or known}
    if args.json:
        print(json.dumps({
            "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0]},
            "languages": {language: figures for language, (_, figures) in results.items()},
        }, indent=2))  # fmt: skip
    else:
        print("== every language (against English's targets):")
        for language, (targets, _) in results.items():
            accuracy = next(value for label, value, _ in targets if label.startswith("right"))
            harmful = next(value for label, value, _ in targets if label.startswith("harmful"))
            missed = [label for label, _, kept in targets if not kept]
            print(f"{'PASS' if not missed else 'FAIL'} {language}: right {accuracy}, harmful {harmful}"
                  + (f"; missed: {'; '.join(missed)}" if missed else ""))
    if not all(kept for targets, _ in results.values() for _, _, kept in targets):
        sys.exit(1)


if __name__ == "__main__":
    main()
