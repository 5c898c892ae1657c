"""The base of every management command here: an ApplicationError becomes a CommandError
(exit status 1, the message on stderr), so commands never convert errors themselves."""
from django.core.management.base import BaseCommand, CommandError

from toxplatform.errors import ApplicationError


class ApplicationCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except ApplicationError as error:
            raise CommandError(str(error)) from None
