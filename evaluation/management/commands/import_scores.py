"""`manage.py import_scores FILE --scorer-name NAME --dataset rtp-lx`: scores made elsewhere,
one prompt per JSON line ({"language", "external_id", "scores": {...}} or {..., "raw": reply}),
then evaluate them like any scorer: `manage.py evaluate_scorer --imported NAME`."""
from django.core.management.base import BaseCommand, CommandError

from evaluation.scorer_trust.imports import import_scores
from toxplatform.errors import ApplicationError


class Command(BaseCommand):
    help = "Import external scores (JSON Lines) so they can be evaluated against gold labels."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--scorer-name", required=True, help="the name the scores are listed under (imported:NAME)")
        parser.add_argument("--dataset", default="rtp-lx")
        parser.add_argument("--replace", action="store_true",
                            help="replace imported scores of the same name (their evaluations are deleted too)")

    def handle(self, *args, **options):
        try:
            score_set = import_scores(options["file"], name=options["scorer_name"], dataset=options["dataset"],
                                      replace=options["replace"])
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Imported {score_set.lines} lines as {score_set.scorer_key} ({', '.join(score_set.measures)}). "
            f"Evaluate: python manage.py evaluate_scorer --imported {score_set.name} --dataset {score_set.dataset.slug}"
        )
