"""What the scorer-trust commands share: a progress bar per stage, and --json output."""
from __future__ import annotations

import sys

from tqdm import tqdm


class StageBars:
    """progress(stage, done, total) -> one tqdm bar per stage on stderr."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage not in self.bars:
            for bar in self.bars.values():
                bar.close()
            self.bars[stage] = tqdm(total=total or None, desc=f"{stage:>20}", file=sys.stderr)
        bar = self.bars[stage]
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def format_number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_lines(rows: list[dict], aggregate_rule: str) -> list[str]:
    header = ["language", "category", "kappa", "95% CI", "exact", "rho", "ceiling", "n", "invalid"]
    lines = []
    for row in rows:
        ci = (f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
              if row.get("ci_low") is not None and row.get("ci_high") is not None else "-")
        lines.append([row["language"], row["category"], format_number(row["weighted_kappa"]), ci,
                      format_number(row["exact_agreement"]), format_number(row["spearman"]),
                      format_number(row["human_ceiling"]), str(row["n"]), str(row["invalid"])])
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = [f"weighted kappa (linear) against the human aggregate: {aggregate_rule}"]
    out += ["  ".join(value.ljust(width) for value, width in zip(line, widths)) for line in [header, *lines]]
    return out


def parse_json_object(option: str, value: str | None) -> dict:
    import json

    from django.core.management.base import CommandError

    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise CommandError(f"{option} are not valid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise CommandError(f"{option} must be a JSON object")
    return parsed


def parse_scorer(value: str) -> dict:
    """`name` or `name:{"param": ...}` (JSON params after the first colon): the --scorer of
    `manage.py evaluate` and `manage.py evaluate_scorer`."""
    name, sep, params = value.partition(":")
    if not sep:
        return {"name": name, "params": {}}
    if not params.strip():
        from django.core.management.base import CommandError

        raise CommandError(f"--scorer {value!r}: parameters are not valid JSON (nothing after ':')")
    return {"name": name, "params": parse_json_object(f"--scorer {value!r}: parameters", params)}
