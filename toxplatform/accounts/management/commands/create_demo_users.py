"""Create (or reset) the three demo accounts and print their logins and API tokens."""

from toxplatform.accounts import services
from toxplatform.accounts.models import Role
from toxplatform.commands import ApplicationCommand
from toxplatform.corpus.selectors import known_language_codes

DEMO_ANNOTATOR_LANGUAGES = ("en", "ar", "de", "hi")


class Command(ApplicationCommand):
    help = "Create the demo users researcher, annotator and admin (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password", default="toxplatform-demo", help="password for all three (default: %(default)s)"
        )

    def handle(self, *args, password: str, **options):
        languages = known_language_codes(DEMO_ANNOTATOR_LANGUAGES)
        accounts = [
            ("researcher", {"role": Role.RESEARCHER}),
            ("annotator", {"role": Role.ANNOTATOR, "languages": languages}),
            ("admin", {"superuser": True}),
        ]
        rows = []
        for username, extra in accounts:
            user = services.create_user_with_role(username=username, password=password, **extra)
            role = "superuser" if user.is_superuser else extra["role"]
            rows.append((username, role, services.ensure_api_token(user=user).key))

        self.stdout.write(f"Demo users (password: {password}):")
        for username, role, token in rows:
            self.stdout.write(f"  {username:<11} {role:<11} API token {token}")
        if languages:
            self.stdout.write(f"  annotator reads: {', '.join(languages)}")
