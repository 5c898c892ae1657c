from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "toxplatform.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from toxplatform.accounts import throttling  # noqa: F401  (counts failed sign-ins)
