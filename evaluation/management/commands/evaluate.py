"""`manage.py evaluate`: create a job and run it here, without a broker (or queue it with --queue).

    python manage.py evaluate --model gemma-3-270m --dataset rtp-lx --languages ar de hi \
        --prompts-per-language 20 --k 5 --max-new-tokens 20 --scorer lexicon --method system_prompt
"""
import json
import sys

from django.core.management.base import CommandError
from tqdm import tqdm

from evaluation import selectors, services
from evaluation.job_parameters import JOB_PARAMETERS
from evaluation.metric_columns import COLUMNS
from evaluation.results import job_results
from evaluation.scorer_trust.cli import parse_scorer
from toxplatform.commands import ApplicationCommand
from toxplatform.param_fields import add_argument


def parse_method_param(value: str) -> tuple[str, object]:
    """`key=value`: the value read as JSON when it is JSON (numbers, true, lists), else as text."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise CommandError(f"--method-param {value!r}: give key=value")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def format_cell(cell) -> str:
    if cell.value is None:
        return "-"
    text = f"{cell.value:.3f}"
    if cell.ci_low is not None and cell.ci_high is not None:
        text += f" [{cell.ci_low:.3f},{cell.ci_high:.3f}]"
    return text


class Command(ApplicationCommand):
    help = "Evaluate a model (x detox method) on a dataset's prompts and print per-language metrics."

    def add_arguments(self, parser):
        # Every job parameter as its schema declares it (type, help, bounds, default); the
        # three below need a command-line shape of their own.
        special = {"scorers", "method_params", "name"}
        for param in JOB_PARAMETERS:
            if param.name not in special:
                add_argument(parser, param)
        add_argument(parser, JOB_PARAMETERS["method_params"])
        parser.add_argument("--method-param", action="append", default=[], dest="method_param_pairs",
                            metavar="KEY=VALUE", help="one detox method parameter; repeat for several "
                            "(added to --method-params)")
        parser.add_argument("--scorer", action="append", default=None, dest="scorers",
                            help='scorer name, or name:{"param": ...}; repeat for several '
                                 f"(default: {', '.join(JOB_PARAMETERS['scorers'].default)})")
        add_argument(parser, JOB_PARAMETERS["name"])
        parser.add_argument("--reuse", action="store_true",
                            help="show an earlier finished job with exactly these parameters instead of running again")
        parser.add_argument("--queue", action="store_true", help="queue the job for workers instead of running it here")
        parser.add_argument("--json", action="store_true", help="print the job and its metrics as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        given = {param.name: options[param.name] for param in JOB_PARAMETERS if options.get(param.name) is not None}
        if options["scorers"]:
            given["scorers"] = [parse_scorer(value) for value in options["scorers"]]
        if options["method_param_pairs"]:
            given["method_params"] = {**given.get("method_params", {}),
                                      **dict(parse_method_param(pair) for pair in options["method_param_pairs"])}
        # The full parameter set, defaults filled in (an out-of-range value is left for
        # create_job to report with every other problem).
        params = {**JOB_PARAMETERS.defaults(), **given}
        earlier = selectors.finished_job_like(**params) if options["reuse"] else None
        if earlier is not None:
            self.stderr.write(f"Reusing finished job {earlier.pk} (same model, method, prompts and settings).")
            self.report(earlier, options)
            return
        job = services.create_job(**params, enqueue=options["queue"])

        if options["queue"]:
            self.stdout.write(f"Queued job {job.pk} ({job.total_prompts} prompts x k={job.k}).")
            return

        job = self.run_inline(job, show_progress=not options["no_progress"] and not options["json"])
        self.report(job, options)

    def report(self, job, options) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(self.as_json(job), indent=2, ensure_ascii=False))
        else:
            self.print_table(job)
        if job.status != job.Status.DONE:
            raise CommandError(f"job {job.pk} ended {job.status}: {job.error}")

    def run_inline(self, job, *, show_progress: bool):
        bars = {}

        def progress(done: int, total: int, stage: str) -> None:
            if stage not in bars:
                bars[stage] = tqdm(total=total, desc=f"{stage:>8}", unit="prompt", file=sys.stderr,
                                   disable=not show_progress)
            bar = bars[stage]
            bar.update(done - bar.n)

        try:
            return services.run_job_inline(job, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()

    def print_table(self, job) -> None:
        self.stdout.write(
            f"\nJob {job.pk}: {job.model.name} x {job.detox_method} on {job.dataset.slug} "
            f"(k={job.k}, {job.max_new_tokens} new tokens, top-p {job.top_p}, seed {job.seed}) - {job.status}"
        )
        header = ["language", "scorer", "category"] + [column.label for column in COLUMNS]
        rows = []
        for results in job_results(job):
            quality = dict(results.quality_for_columns)
            for row in results.toxicity or [None]:
                cells = [row.cells.get(column.metric) if row else None for column in COLUMNS]
                cells = [
                    cell if cell is not None else quality.get(column) for column, cell in zip(COLUMNS, cells)
                ]
                rows.append(
                    # Categories with the very same numbers are one row: "profanity=toxicity".
                    [results.language.code, row.scorer if row else "-", "=".join([row.category, *row.merged]) if row else "-"]
                    + [format_cell(cell) if cell else "-" for cell in cells]
                )
        widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
        for line in [header, *rows]:
            self.stdout.write("  ".join(str(value).ljust(width) for value, width in zip(line, widths)))

    @staticmethod
    def as_json(job) -> dict:
        metrics = list(
            job.metrics.order_by("language_id", "scorer", "category", "metric", "subset").values(
                "language_id", "scorer", "category", "metric", "subset", "variant", "value", "n", "ci_low", "ci_high"
            )
        )
        return {
            "job": job.pk,
            "status": job.status,
            "error": job.error,
            "model": job.model.name,
            "model_fingerprint": job.model_fingerprint,
            "method": job.detox_method,
            "method_params": job.detox_params,
            "dataset": job.dataset.slug,
            "languages": job.languages,
            "k": job.k,
            "max_new_tokens": job.max_new_tokens,
            "top_p": job.top_p,
            "temperature": job.temperature,
            "seed": job.seed,
            "scorers": job.scorers,
            "code_version": job.code_version,
            "metrics": [{**row, "language": row.pop("language_id")} for row in metrics],
        }
