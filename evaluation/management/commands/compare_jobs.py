"""python manage.py compare_jobs A B: job A minus job B on their shared prompts, per language.

A and B are job ids or job names (a name means the newest finished job of that name). The
numbers are the comparison page's (evaluation.comparison): paired bootstrap CIs and sign-flip
permutation p-values.
"""
import json

from django.core.management.base import CommandError

from evaluation import comparison, selectors
from evaluation.serializers import ComparisonSerializer
from toxplatform.commands import ApplicationCommand


def find_job(value: str):
    jobs = selectors.done_jobs()
    found = jobs.filter(pk=int(value)).first() if value.isdigit() else jobs.filter(name=value).first()
    if found is None:
        raise CommandError(f"no finished job with id or name {value!r}")
    return found


def number(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_difference(row) -> str:
    if row.difference is None:
        return "-"
    text = f"{row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}] p={row.p_value:.3f}"
    return text + (" *" if row.significant else "")


class Command(ApplicationCommand):
    help = "Compare two finished jobs on their shared prompts (A - B per language, paired CIs and p-values)."

    def add_arguments(self, parser):
        parser.add_argument("a", help="job A: an id or a job name")
        parser.add_argument("b", help="job B: an id or a job name")
        parser.add_argument("--scorer", default="", help="a scorer key both jobs used (default: the first)")
        parser.add_argument("--category", default="toxicity", help="harm category (default: toxicity)")
        parser.add_argument("--k", type=int, default=None, help="first k samples (default: the smaller job's k)")
        parser.add_argument("--rule", default="", choices=["", ">=", ">"], help="TP rule (default: job A's)")
        parser.add_argument("--json", action="store_true", help="print the comparison as JSON")

    def handle(self, *args, **options):
        a, b = find_job(options["a"]), find_job(options["b"])
        result = comparison.compare_jobs(a, b, scorer=options["scorer"], category=options["category"],
                                         k=options["k"], rule=options["rule"])
        if options["json"]:
            self.stdout.write(json.dumps(ComparisonSerializer(result).data, indent=2, ensure_ascii=False))
            return
        self.stdout.write(
            f"\nA = job {a.pk} ({a.model.name} x {a.detox_method}), B = job {b.pk} ({b.model.name} x {b.detox_method}); "
            f"{result.scorer} on {result.category}, k={result.k}, TP {result.rule} {result.threshold:g}"
        )
        header = ["language", "n", "EMT A", "EMT B", "EMT A-B [95% CI]", "TP A", "TP B", "TP A-B [95% CI]"]
        lines = []
        for row in [*result.languages, *([result.overall] if result.overall else [])]:
            emt, tp = row.row("emt"), row.row("tp")
            lines.append([row.language.code if row.language else "all", str(row.n),
                          number(emt.a), number(emt.b), format_difference(emt),
                          number(tp.a), number(tp.b), format_difference(tp)])
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
        for line in [header, *lines]:
            self.stdout.write("  ".join(value.ljust(width) for value, width in zip(line, widths)))
        if result.only_in_a or result.only_in_b:
            self.stdout.write(f"Left out: {result.only_in_a} prompts only A scored, {result.only_in_b} only B scored.")
        for note in result.notes:
            self.stdout.write(note)
        self.stdout.write("* significant: the interval excludes 0 and p < 0.05. Negative = A is less toxic.")
