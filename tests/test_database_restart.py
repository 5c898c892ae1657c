"""A PostgreSQL restart under a running web server (a real one, private to this test: the
shared server is never touched). Persistent connections are checked before reuse, so the
first request after the restart is answered, not failed."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.private_services import PrivatePostgres

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

# One web process as gunicorn runs it: Django's WSGI handler, whose request_started and
# request_finished signals decide whether a persistent connection is reused.
WEB_PROCESS = textwrap.dedent("""
    import sys
    from django.core.wsgi import get_wsgi_application
    from django.test.client import RequestFactory

    app = get_wsgi_application()

    def get(path):
        environ = RequestFactory()._base_environ(PATH_INFO=path, REQUEST_METHOD="GET", SERVER_NAME="localhost")
        status = []
        body = app(environ, lambda line, headers, exc_info=None: status.append(line))
        content = b"".join(body)
        body.close()  # request_finished: the connection is kept (CONN_MAX_AGE)
        return status[0].split()[0] + " " + content.decode()

    print("before", get("/healthz"), flush=True)
    sys.stdin.readline()  # the test restarts PostgreSQL now
    print("after", get("/healthz"), flush=True)
""")


def test_the_first_request_after_a_database_restart_is_answered(tmp_path):
    with PrivatePostgres() as pg:
        env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "toxplatform.settings",
               "TOXPLATFORM_VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": pg.url, "SECRET_KEY": "x" * 50,
               "DB_CONN_MAX_AGE": "600"}
        web = subprocess.Popen([sys.executable, "-c", WEB_PROCESS], env=env, cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert web.stdout.readline().strip() == "before 200 ok"
            pg.restart()  # cuts the web process's persistent connection
            out, err = web.communicate("\n", timeout=60)
        finally:
            if web.poll() is None:
                web.kill()
        assert out.strip() == "after 200 ok", err
