"""Settings, all from the environment.

With nothing set the platform runs embedded: a SQLite file and a broker that needs no
server (kombu's filesystem transport) under ./var. With DATABASE_URL=postgres://... and
CELERY_BROKER_URL=redis://... it uses PostgreSQL and Redis, and workers can run on many
machines.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
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
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'toxplatform.sqlite3'}")
# Embedded: one machine on a SQLite file (the demo, a laptop), served on http://127.0.0.1.
EMBEDDED = DATABASE_URL.startswith("sqlite:")


def _embedded_secret_key() -> str:
    """A random key made once for this var folder (mode 0600): never a key anyone else knows."""
    path = VAR_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    import secrets

    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "insecure-dev-key-DEBUG-only"
    elif EMBEDDED:
        SECRET_KEY = _embedded_secret_key()
    else:
        # A server setup (PostgreSQL) must not sign sessions with a key that is not its own.
        raise ImproperlyConfigured("SECRET_KEY must be set (see docs/deploy.md); refusing to start without it")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Served over HTTPS by a TLS-terminating proxy (docs/deploy.md): on by default unless DEBUG or
# embedded. The proxy must set X-Forwarded-Proto; /healthz stays plain HTTP for the container's
# own healthcheck.
HTTPS = env_bool("TOXPLATFORM_HTTPS", not DEBUG and not EMBEDDED)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading is a promise to browser vendors an operator makes for the whole domain.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

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
    "toxplatform.request_checks.RejectNulMiddleware",
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
        DATABASE_URL,
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        # A kept connection is checked before a request reuses it: after a database restart
        # the first request reconnects instead of failing with a 500.
        conn_health_checks=True,
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
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-ins go through the failed sign-in throttle (toxplatform/accounts/throttling.py).
AUTHENTICATION_BACKENDS = ["toxplatform.accounts.backends.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", 5))  # per account
LOGIN_FAILURE_LIMIT_PER_ADDRESS = int(os.environ.get("LOGIN_FAILURE_LIMIT_PER_ADDRESS", 20))
LOGIN_FAILURE_WINDOW_S = int(os.environ.get("LOGIN_FAILURE_WINDOW_S", 900))
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
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": os.environ.get("API_ANON_RATE", "30/minute")},
    # Proxies in front of the web server: the client address is the last untrusted hop of
    # X-Forwarded-For (1 behind the TLS proxy of docs/deploy.md; 0 uses the peer address).
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", 0)),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ToxPlatform API",
    "DESCRIPTION": "Multilingual toxicity evaluation: corpus, evaluation jobs, annotations.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status": each enum gets its own name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "evaluation.models.EvaluationJob.Status",
        "ChunkStatusEnum": "evaluation.models.Chunk.Status",
        "CampaignStatusEnum": "annotations.models.Campaign.Status",
        "RunStatusEnum": "evaluation.scorer_trust.models.RunStatus",
    },
}

# Shared by every process: login throttles and API rate limits count here. Redis in
# production (CACHE_URL=redis://...); else a folder under var/, shared by one machine's processes.
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "toxplatform"}}
elif CACHE_URL:
    raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL (got scheme {CACHE_URL.split(':')[0]!r})")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(VAR_DIR / "cache")}}

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
# A broker blip does not cancel the running chunk: it goes on under its database claim, and
# what it could not send afterwards the sweeper sends (Celery warns that 6.0 flips this).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Faults (docs/architecture.md, "Faults"). A claim on a chunk is a lease its worker renews
# every quarter lease while it works: a worker that died, on any host, frees its chunk when
# the lease runs out. Beat runs the sweeper every EVALUATION_SWEEP_SECONDS: it frees such
# claims and sends again any ready step whose message is overdue (a broker restarted
# without persistence loses every queued message) — first after
# EVALUATION_RESEND_AFTER_SECONDS, then at doubling intervals. A dead worker is noticed
# within lease + sweep seconds (45 + 15 by default).
EVALUATION_CLAIM_LEASE_SECONDS = float(os.environ.get("TOXPLATFORM_CLAIM_LEASE_SECONDS", 45))
EVALUATION_SWEEP_SECONDS = float(os.environ.get("TOXPLATFORM_SWEEP_SECONDS", 15))
EVALUATION_RESEND_AFTER_SECONDS = float(os.environ.get("TOXPLATFORM_RESEND_AFTER_SECONDS", 60))
CELERY_BEAT_SCHEDULE = {
    "resume-stale-evaluation-chunks": {
        "task": "evaluation.resume_stale_jobs", "schedule": EVALUATION_SWEEP_SECONDS,
        # A sweep not started within one interval is superseded by the next one.
        "options": {"expires": EVALUATION_SWEEP_SECONDS},
    },
}

# Leaderboards name models and methods: researchers only, unless an operator makes them public
# (then everyone, signed in or not, annotators included).
LEADERBOARDS_PUBLIC = env_bool("TOXPLATFORM_PUBLIC_LEADERBOARDS", False)

# --- Evaluation -----------------------------------------------------------------------
# Where converted packaged models and prepared detox artifacts are cached.
MODEL_CACHE_DIR = Path(os.environ.get("TOXPLATFORM_MODEL_CACHE", VAR_DIR / "models"))
# Folders (comma separated) users may name models and scorer models in, besides the cache:
# any other path is refused (evaluation.model_loading.safe_model_path).
MODEL_ROOTS = [Path(root) for root in env_list("TOXPLATFORM_MODEL_ROOTS", "")]
# The only folders a detox method reads a user-given file from (word lists, labelled texts, pairs).
DETOX_DATA_ROOTS = [Path(p) for p in env_list("TOXPLATFORM_DETOX_DATA_ROOTS", str(VAR_DIR / "detox-data"))]
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
# OpenAI-compatible endpoints (evaluation/generators/openai.py): the environment variables a
# model spec may take its key from (api_key_env), the hosts keys from the environment may be
# sent to, and the networks (CIDR) of loopback / private / link-local addresses endpoints may
# use; every other non-public address is refused (no cloud metadata, no internal services).
OPENAI_API_KEY_ENVS = env_list("TOXPLATFORM_API_KEY_ENVS", "OPENAI_API_KEY")
OPENAI_KEY_HOSTS = [host.lower() for host in env_list("TOXPLATFORM_API_KEY_HOSTS", "api.openai.com")]
ENDPOINT_ALLOWED_NETWORKS = env_list("TOXPLATFORM_ENDPOINT_NETWORKS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
