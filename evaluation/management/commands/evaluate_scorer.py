"""`manage.py evaluate_scorer`: how far a scorer agrees with a dataset's human labels, per
language x harm category (the prompt text is scored; nothing is generated).

    python manage.py evaluate_scorer --scorer lexicon --dataset rtp-lx --languages ar de --json
    python manage.py evaluate_scorer --scorer 'trained:{"name": "rtp-lx-e5"}' --dataset rtp-lx
    python manage.py evaluate_scorer --imported gpt4-judge --dataset rtp-lx --json
"""
import json

from django.core.management.base import BaseCommand, CommandError

from evaluation.scorer_trust import scorer_evaluation
from evaluation.scorer_trust.agreement_table import MAPPING_DESCRIPTION, json_results
from evaluation.scorer_trust.cli import StageBars, format_number, parse_scorer, table_lines
from evaluation.scorer_trust.labels import DEFAULT_RULE, rule_description
from evaluation.scorer_trust.selectors import evaluation_rows
from toxplatform.errors import ApplicationError


class Command(BaseCommand):
    help = "Evaluate a scorer (or imported scores) against a dataset's gold labels: weighted kappa per language x category."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--scorer", help='scorer name, or name:{"param": ...}')
        source.add_argument("--imported", help="the name of a set of imported scores (manage.py import_scores)")
        parser.add_argument("--dataset", default="rtp-lx")
        parser.add_argument("--languages", nargs="+", default=[], help="language codes (default: all)")
        parser.add_argument("--categories", nargs="+", default=[], help="harm categories (default: all it scores)")
        parser.add_argument("--aggregate-rule", default=DEFAULT_RULE)
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per CI (0: none)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--heldout-of", default=None, metavar="RUN",
                            help="score only the held-out groups of this training run (compare on the same prompts)")
        parser.add_argument("--queue", action="store_true", help="queue it for a worker instead of running it here")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        try:
            evaluation = scorer_evaluation.create_scorer_evaluation(
                scorer=parse_scorer(options["scorer"]) if options["scorer"] else None,
                imported=options["imported"], dataset=options["dataset"], languages=options["languages"],
                categories=options["categories"], aggregate_rule=options["aggregate_rule"],
                bootstrap=options["bootstrap"], seed=options["seed"], heldout_of=options["heldout_of"],
                enqueue=options["queue"],
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        if options["queue"]:
            self.stdout.write(f"Queued scorer evaluation {evaluation.pk} ({evaluation.scorer_key}).")
            return
        bars = StageBars(not options["no_progress"] and not options["json"])
        try:
            evaluation = scorer_evaluation.run_scorer_evaluation(evaluation.pk, progress=bars)
        finally:
            bars.close()
        rows = evaluation_rows(evaluation)
        if options["json"]:
            self.stdout.write(json.dumps(as_json(evaluation, rows), indent=2, ensure_ascii=False))
        else:
            self.stdout.write(f"Scorer evaluation {evaluation.pk}: {evaluation.scorer_key} on "
                              f"{evaluation.dataset.slug} - {evaluation.status}")
            if evaluation.excluded_prompts:
                self.stdout.write(f"left out {evaluation.excluded_prompts} prompts the scorer was trained on")
            for line in table_lines([row for row in rows if row["subset"] == "all"], evaluation.aggregate_rule):
                self.stdout.write(line)
            summary = (evaluation.notes or {}).get("summary") or {}
            self.stdout.write(f"mean weighted kappa {format_number(summary.get('mean_kappa'))}; "
                              f"human ceiling {format_number(summary.get('mean_human_ceiling'))}")
        if evaluation.status != "done":
            raise CommandError(f"scorer evaluation {evaluation.pk} ended {evaluation.status}: {evaluation.error}")


def as_json(evaluation, rows) -> dict:
    return {
        "evaluation": evaluation.pk,
        "scorer": evaluation.scorer_key,
        "status": evaluation.status,
        "error": evaluation.error,
        "dataset": evaluation.dataset.slug,
        "aggregate_rule": evaluation.aggregate_rule,
        "aggregate_rule_description": rule_description(evaluation.aggregate_rule),
        "mapping_rule": evaluation.mapping_rule,
        "mapping_rule_description": MAPPING_DESCRIPTION,
        "measures": evaluation.measures,
        "excluded_prompts": evaluation.excluded_prompts,
        "heldout_of": (evaluation.notes or {}).get("heldout_of"),
        "summary": (evaluation.notes or {}).get("summary"),
        **json_results(rows),
    }
