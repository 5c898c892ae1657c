from django.apps import AppConfig


class CorpusConfig(AppConfig):
    name = "toxplatform.corpus"
    label = "corpus"
    verbose_name = "Corpus"
