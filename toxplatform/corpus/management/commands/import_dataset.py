"""manage.py import_dataset FORMAT PATH: import a prompt dataset (thin wrapper around the service)."""
import sys
from argparse import RawDescriptionHelpFormatter

from django.core.management.base import CommandError, DjangoHelpFormatter
from tqdm import tqdm

from toxplatform.commands import ApplicationCommand
from toxplatform.corpus.importers import IMPORTERS
from toxplatform.corpus.importers.mapping import __doc__ as MAPPING_HELP
from toxplatform.corpus.services import ImportReport, import_dataset

STAGE_BARS = {
    "check": {"desc": "checking", "unit": "B", "unit_scale": True, "unit_divisor": 1024},
    "write": {"desc": "writing", "unit": " prompts", "unit_scale": True},
}


def split_pair(value: str, flag: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key.strip():
        raise CommandError(f"{flag} {value!r}: expected KEY=VALUE")
    return key.strip(), rest.strip()


class Command(ApplicationCommand):
    help = (
        "Import a prompt dataset. Formats: "
        + "; ".join(f"{name}: {cls.summary}" for name, cls in IMPORTERS.items())
        + ". Re-importing the same files changes nothing; a bad file changes nothing and "
        "the error names the file, line and field."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = "Column mapping for the jsonl and csv formats:\n" + MAPPING_HELP.split("\n", 1)[1]
        parser.formatter_class = _RawEpilogFormatter
        return parser

    def add_arguments(self, parser):
        parser.add_argument("format", choices=sorted(IMPORTERS), help="file format")
        parser.add_argument("path", help="a file, or a directory of files")
        parser.add_argument("--dataset-slug", help="dataset to import into (default: the format's, e.g. rtp-lx)")
        parser.add_argument(
            "--languages", nargs="+", metavar="CODE",
            help="import only these BCP-47 codes (space or comma separated), e.g. --languages de fr zh-Hans",
        )
        parser.add_argument(
            "--map", action="append", default=[], metavar="FIELD=COLUMN",
            help="jsonl/csv: which column fills a field (repeatable), e.g. --map text=Prompt "
            "--map language=lang --map id=uid --map group=gid --map label:toxicity=tox_score",
        )
        parser.add_argument(
            "--label-scale", action="append", default=[], metavar="CATEGORY=MIN:MAX",
            help="jsonl/csv: the scale of a mapped label (default: the harm category's), e.g. toxicity=0:1",
        )
        parser.add_argument("--label-source", help="jsonl/csv: who gave the labels (default: dataset), e.g. human")
        parser.add_argument(
            "--toxic-threshold", type=float, metavar="X",
            help="jsonl/csv: a prompt is toxic when its toxicity label is >= X",
        )
        parser.add_argument("--dataset-name", help="display name of a new dataset (or rename it)")
        parser.add_argument("--dataset-version", help="version string of the dataset")
        parser.add_argument("--dataset-license", help="license of the dataset")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts):
        languages = [code for value in opts["languages"] or [] for code in value.split(",") if code.strip()]
        options = {
            "dataset_name": opts["dataset_name"],
            "dataset_version": opts["dataset_version"],
            "dataset_license": opts["dataset_license"],
        }
        if opts["format"] in ("jsonl", "csv"):
            options.update(
                map=dict(split_pair(v, "--map") for v in opts["map"]),
                label_scale=dict(split_pair(v, "--label-scale") for v in opts["label_scale"]),
                label_source=opts["label_source"],
                toxic_threshold=opts["toxic_threshold"],
            )
        elif opts["map"] or opts["label_scale"] or opts["label_source"] or opts["toxic_threshold"] is not None:
            raise CommandError("--map, --label-scale, --label-source and --toxic-threshold are for jsonl and csv")

        bars = _ProgressBars(disabled=opts["no_progress"] or not sys.stderr.isatty())
        try:
            report = import_dataset(
                opts["format"], opts["path"], dataset_slug=opts["dataset_slug"],
                languages=languages or None, options=options, progress=bars,
            )
        finally:
            bars.close()
        self._print_summary(report)

    def _print_summary(self, report: ImportReport) -> None:
        state = "new dataset" if report.dataset_created else "existing dataset"
        self.stdout.write(
            f"Imported {report.format} into {report.dataset} ({state}) from {len(report.files)} file(s), "
            f"sha256 {report.checksum[:16]}"
        )
        header = ("language", "prompts", "new", "updated", "unchanged", "labels", "new", "updated", "unchanged")
        rows = [*report.languages.items(), ("total", report.totals)]
        self.stdout.write("  ".join(f"{h:>9}" for h in header))
        for code, c in rows:
            cells = (code, c.prompts, c.created, c.updated, c.unchanged,
                     c.labels, c.labels_created, c.labels_updated, c.labels_unchanged)
            self.stdout.write("  ".join(f"{cell:>9}" for cell in cells))
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if not report.changed:
            self.stdout.write("Nothing changed: the database already held these prompts and labels.")


class _ProgressBars:
    """One tqdm bar per import stage, on stderr; nothing when disabled (not a terminal, --no-progress)."""

    def __init__(self, disabled: bool):
        self.disabled = disabled
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.disabled:
            return
        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():
                other.close()
            bar = self.bars[stage] = tqdm(total=total, file=sys.stderr, leave=False, **STAGE_BARS[stage])
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class _RawEpilogFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """Django's option order, with the epilog's line breaks kept."""
