from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "toxplatform.accounts"
    label = "accounts"
    verbose_name = "Accounts"
