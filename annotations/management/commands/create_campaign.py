"""manage.py create_campaign: an annotation campaign from finished jobs, as the form and API make it."""
import json
from collections import Counter
from pathlib import Path

from django.core.management.base import CommandError

from annotations import services
from annotations.kinds import KINDS
from annotations.models import Campaign
from evaluation import selectors as evaluation_selectors
from toxplatform.commands import ApplicationCommand


def find_job(value: str):
    """A job id, or a name (the newest finished job of that name), as compare_jobs takes them."""
    jobs = evaluation_selectors.done_jobs()
    found = jobs.filter(pk=int(value)).first() if value.isdigit() else jobs.filter(name=value).first()
    if found is None:
        raise CommandError(f"no finished job with id or name {value!r}")
    return found


class Command(ApplicationCommand):
    help = "Create an annotation campaign (pairwise or rating) from finished evaluation jobs."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=KINDS.names())
        parser.add_argument("--jobs", nargs="+", required=True, help="finished jobs: ids or names")
        parser.add_argument("--languages", nargs="+", required=True)
        parser.add_argument("--categories", nargs="+", default=["toxicity"],
                            help="pairwise: one category; rating: every category rated (default: toxicity)")
        parser.add_argument("--ask-fluency", action="store_true", help="pairwise: also ask which is more fluent")
        parser.add_argument("--items-per-language", type=int, default=20)
        parser.add_argument("--overlap", type=int, default=3, help="finished judgments per item")
        parser.add_argument("--selection", choices=Campaign.Selection.values, default="random")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--instructions", default="")
        parser.add_argument("--instructions-json", type=Path, help='file with {"ar": "...", ...}')
        parser.add_argument("--blur", action="store_true", help="blur outputs until the annotator reveals them")
        parser.add_argument("--break-minutes", type=int, default=45)
        parser.add_argument("--daily-cap", type=int, default=200)
        parser.add_argument("--reservation-minutes", type=int, default=20)
        parser.add_argument("--annotators", nargs="*", default=[], help="usernames to enroll")
        parser.add_argument("--gold", type=Path, help="JSON file with gold items and their answers")
        parser.add_argument("--json", action="store_true", help="print the campaign as JSON")
        parser.add_argument("--if-missing", action="store_true",
                            help="do nothing when a campaign of this name exists (the demo runs again safely)")

    def _json_file(self, path: Path | None, expected: type):
        if path is None:
            return expected()
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        if not isinstance(value, expected):
            raise CommandError(f"{path} must hold a JSON {'object' if expected is dict else 'list'}.")
        return value

    def handle(self, *args, **o):
        existing = Campaign.objects.filter(name=o["name"]).first() if o["if_missing"] else None
        if existing is not None:
            self.stdout.write(f"Campaign {existing.pk} \"{existing.name}\" exists already; nothing created.")
            return
        jobs = [find_job(value) for value in o["jobs"]]
        campaign = services.create_campaign(
            name=o["name"], kind=o["kind"], jobs=jobs, languages=o["languages"], categories=o["categories"],
            ask_fluency=o["ask_fluency"], items_per_language=o["items_per_language"], overlap=o["overlap"],
            selection_mode=o["selection"], seed=o["seed"], instructions=o["instructions"],
            instructions_by_language=self._json_file(o["instructions_json"], dict), blur_text=o["blur"],
            break_after_minutes=o["break_minutes"], daily_cap=o["daily_cap"],
            reservation_minutes=o["reservation_minutes"], annotators=o["annotators"],
            gold=self._json_file(o["gold"], list),
        )
        per_language = Counter(campaign.items.values_list("language_id", flat=True))
        annotators = sorted(campaign.annotators.values_list("username", flat=True))
        if o["json"]:
            self.stdout.write(json.dumps({"id": campaign.pk, "name": campaign.name, "kind": campaign.kind,
                                          "items": dict(sorted(per_language.items())), "annotators": annotators}))
            return
        self.stdout.write(f"Campaign {campaign.pk} \"{campaign.name}\" ({campaign.get_kind_display()}), "
                          f"overlap {campaign.overlap}:")
        for code, count in sorted(per_language.items()):
            self.stdout.write(f"  {code:<8} {count} items")
        self.stdout.write(f"  annotators: {', '.join(annotators) or 'none yet'}")
        self.stdout.write(f"  annotate at /annotations/campaigns/{campaign.pk}/work/ ; dashboard /annotations/campaigns/{campaign.pk}/")
