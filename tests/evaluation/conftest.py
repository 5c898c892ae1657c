"""Fixtures the evaluation page and API tests share: the mini dataset, signed-in clients."""
import pytest

from tests.evaluation.results_data import PASSWORD, make_dataset, make_user
from toxplatform.accounts.models import Role


@pytest.fixture
def dataset(db):
    """Two English, two Arabic and one German prompt (results_data.make_dataset)."""
    return make_dataset()


@pytest.fixture
def researcher_client(client):
    client.user = make_user("res", Role.RESEARCHER)
    client.login(username="res", password=PASSWORD)
    return client


@pytest.fixture
def annotator_client(client):
    client.user = make_user("ann", Role.ANNOTATOR)
    client.login(username="ann", password=PASSWORD)
    return client
