import importlib
import subprocess
import sys

import pytest
from django.conf import settings

from toxplatform.corpus.models import HarmCategory, Language


def test_stdlib_platform_is_not_shadowed():
    import platform

    assert platform.system() in {"Linux", "Darwin", "Windows"}
    assert "site-packages" not in (platform.__file__ or "") and "toxplatform" not in platform.__file__


def test_tests_run_on_postgresql_and_redis():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")


def test_embedded_default_needs_no_server(tmp_path):
    """With nothing in the environment: SQLite + kombu's filesystem broker under the var dir."""
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='toxplatform.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']); print(s.CELERY_BROKER_URL)"
    )
    env = {"PATH": "/usr/bin:/bin", "TOXPLATFORM_VAR_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    engine, broker = out.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert (tmp_path / "broker" / "queue").is_dir()


def test_celery_app_declares_the_pipeline_queues():
    celery_app = importlib.import_module("toxplatform.celery").app
    names = {q.name for q in celery_app.conf.task_queues}
    assert {"generate", "score"} <= names
    assert celery_app.conf.worker_prefetch_multiplier == 1
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.accept_content == ["json"]


@pytest.mark.django_db
def test_reference_data_is_seeded():
    assert Language.objects.get(code="ar").is_rtl
    assert Language.objects.get(code="he").is_rtl
    assert Language.objects.get(code="fa").is_rtl
    assert Language.objects.get(code="ur").is_rtl
    assert not Language.objects.get(code="zh-Hant").is_rtl
    tox = HarmCategory.objects.get(slug="toxicity")
    assert (tox.scale_min, tox.scale_max) == (1, 5)
    rtp_lx_eight = HarmCategory.objects.filter(position__lt=20)
    assert rtp_lx_eight.count() == 8
    assert all((c.scale_min, c.scale_max) == (1, 3) for c in rtp_lx_eight.exclude(slug="toxicity"))
