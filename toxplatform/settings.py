"""Settings, all from the environment.

With nothing set the platform runs embedded: a SQLite file and a broker that needs no
server (kombu's filesystem transport) under ./var. With DATABASE_URL=postgres://... and
CELERY_BROKER_URL=redis://... it uses PostgreSQL and Redis, and workers can run on many
machines.
"""
import os
from pathlib import Path

import dj_database_url
from kombu import Queue

from toxplatform import queues

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TOXPLATFORM_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and os.environ.get("TOXPLATFORM_REQUIRE_SECRET_KEY") == "1":
        raise RuntimeError("SECRET_KEY must be set in production")
    SECRET_KEY = "insecure-dev-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: docs work offline
    "toxplatform.corpus",
    "toxplatform.accounts",
    "evaluation",
    "annotations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "toxplatform.middleware.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "toxplatform.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "toxplatform" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "toxplatform.accounts.context_processors.roles",
            ],
        },
    },
]

WSGI_APPLICATION = "toxplatform.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'toxplatform.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker and the web server may write at once: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so a second writer
    # (the web server, a worker, beat, a worker's heartbeat) waits for it up to the timeout
    # instead of failing at once with "database is locked" when its read turns into a write.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
# The project package is not an app: its shared CSS/JS is found through this directory.
STATICFILES_DIRS = [BASE_DIR / "toxplatform" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve app static files straight from the source tree (no collectstatic needed for the demo).
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "toxplatform.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "toxplatform.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ToxPlatform API",
    "DESCRIPTION": "Multilingual toxicity evaluation: corpus, evaluation jobs, annotations.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # kombu's default is ./control
        "store_processed": False,
    }
else:
    # Longer than the longest hard time limit, so a slow task is not redelivered while it runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_RESULT_BACKEND = None  # job state lives in the database, not in the broker
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_DEFAULT_QUEUE = queues.DEFAULT
CELERY_TASK_QUEUES = tuple(Queue(name) for name in queues.ALL)
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", 3300))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", 3600))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A chunk whose worker died on another machine would otherwise wait for Redis's visibility
# timeout: beat re-sends stale claims (and a due finalize) every few minutes.
CELERY_BEAT_SCHEDULE = {
    "resume-stale-evaluation-chunks": {"task": "evaluation.resume_stale_jobs", "schedule": 300.0},
}

# --- Evaluation -----------------------------------------------------------------------
# Where converted packaged models and prepared detox artifacts are cached.
MODEL_CACHE_DIR = Path(os.environ.get("TOXPLATFORM_MODEL_CACHE", VAR_DIR / "models"))
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
# Limits that protect the machine (checked by services.create_job, whatever the interface):
# one job's prompts x k x max_new_tokens (RTP-LX whole, k = 25, 20 tokens is 15.1 M), and
# the jobs one user may have queued or running at once.
JOB_MAX_WORK = int(os.environ.get("TOXPLATFORM_JOB_MAX_WORK", 50_000_000))
JOB_MAX_ACTIVE_PER_USER = int(os.environ.get("TOXPLATFORM_JOB_MAX_ACTIVE_PER_USER", 10))
# A job above this much work (prompts x k x max_new_tokens) is queued only when its author
# confirms it (the job form's confirm_large box, the API's confirm_large field).
JOB_CONFIRM_WORK = int(os.environ.get("TOXPLATFORM_JOB_CONFIRM_WORK", 200_000))
# Workers write a heartbeat row this often; one not seen for three beats counts as gone.
WORKER_HEARTBEAT_SECONDS = float(os.environ.get("TOXPLATFORM_WORKER_HEARTBEAT_SECONDS", 30))
# Environment variables an llm_judge job may name as its API key (`api_key_env`): a job's
# parameters must not be able to send any other secret (SECRET_KEY, DATABASE_URL) anywhere.
JUDGE_API_KEY_ENVS = env_list("TOXPLATFORM_JUDGE_KEY_ENVS", ",".join(["OPENAI_API_KEY", "JUDGE_API_KEY"]))
# Azure AI Content Safety (azure_content_safety scorer): the resource endpoint, and the name
# of the environment variable holding its key (read when a scorer is built, never stored).
AZURE_CONTENT_SAFETY_ENDPOINT = os.environ.get("AZURE_CONTENT_SAFETY_ENDPOINT", "")
AZURE_CONTENT_SAFETY_KEY_ENV = "AZURE_CONTENT_SAFETY_KEY"
AZURE_CONTENT_SAFETY_API_VERSION = os.environ.get("AZURE_CONTENT_SAFETY_API_VERSION", "2023-10-01")
# Client-side limit on requests per second to the Azure resource (its tier's quota).
AZURE_CONTENT_SAFETY_RPS = float(os.environ.get("AZURE_CONTENT_SAFETY_RPS", "5"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
