import pytest

from tests.annotations.campaign_data import make_jobs


@pytest.fixture
def jobs(db):
    """(dataset, [base job, detoxed job]) with one output per prompt each."""
    return make_jobs()
