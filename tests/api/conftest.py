"""A small corpus built with the ORM (languages and harm categories come from the seed migration)."""
import pytest
from rest_framework.test import APIClient

from toxplatform.accounts.models import Role
from toxplatform.accounts.services import create_user_with_role, ensure_api_token
from toxplatform.corpus.models import Dataset, Prompt, PromptLabel

XSS_TEXT = "<script>alert('x')</script> & <img src=x onerror=alert(1)> \"quoted\""


def add_prompt(dataset, language, external_id, text, *, group="", toxic=None, culturally_specific=False, labels=()):
    prompt = Prompt.objects.create(
        dataset=dataset, language_id=language, external_id=external_id, group_id=group, text=text,
        is_toxic=toxic, culturally_specific=culturally_specific,
    )
    for category, value, raters, source, scale in labels:
        PromptLabel.objects.create(
            prompt=prompt, category_id=category, value=value, rater_values=raters, num_raters=len(raters),
            source=source, scale_min=scale[0], scale_max=scale[1],
        )
    return prompt


@pytest.fixture
def corpus(db):
    rtp_lx = Dataset.objects.create(slug="rtp-lx-mini", name="RTP-LX mini", format="rtp-lx", license="CDLA")
    ptp = Dataset.objects.create(slug="ptp-mini", name="PTP mini", format="ptp")
    human_5 = (1, 5)
    human_3 = (1, 3)
    prob = (0, 1)
    add_prompt(rtp_lx, "en", "1", "You are an idiot and", group="g1", toxic=True, labels=[
        ("toxicity", 4.33, [4, 4, 5], "human", human_5),
        ("insult", 3.0, [3, 3, 3], "human", human_3),
        ("toxicity", 0.95, [], "perspective", prob),
    ])
    add_prompt(rtp_lx, "ar", "1", "أنت غبي و", group="g1", toxic=True, labels=[
        ("toxicity", 3.67, [3, 4, 4], "human", human_5),
    ])
    add_prompt(rtp_lx, "he", "1", "אתה טיפש ו", group="g1", toxic=False, culturally_specific=True, labels=[
        ("toxicity", 1.67, [1, 2, 2], "human", human_5),
    ])
    add_prompt(rtp_lx, "en", "2", XSS_TEXT, group="g2", toxic=False, labels=[
        ("toxicity", 1.0, [1, 1, 1], "human", human_5),
    ])
    add_prompt(rtp_lx, "zh-Hans", "2", "今天天气很好", group="g2", toxic=None)
    add_prompt(ptp, "en", "p1", "The weather today is", toxic=False, labels=[
        ("toxicity", 0.8, [], "perspective", prob),
    ])
    add_prompt(ptp, "de", "p2", "Du bist so ein", toxic=True, labels=[
        ("toxicity", 0.9, [], "perspective", prob),
    ])
    return {"rtp-lx-mini": rtp_lx, "ptp-mini": ptp}


@pytest.fixture
def user(db):
    """A researcher: the corpus API is theirs (annotators must not see gold labels)."""
    return create_user_with_role(username="reader", password="a long enough password", role=Role.RESEARCHER)


@pytest.fixture
def token_client(user):
    token = ensure_api_token(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
